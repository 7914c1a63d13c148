"""Soak: the whole system on the simulated carrier under faults, then every invariant checked.

    make soak                         # the full run: 20,000 tasks, private Redis on port 6390
    .venv/bin/python bench/soak.py --tasks 2000 --fault-window 20

Two organisations, each with a hard and a soft workspace and many batch campaigns (hard and soft,
mixed priorities, retries, some calling windows shut right now), random outcomes and callbacks on
the simulated carrier at a hundredth of real time; several Celery workers (one with beat) and the
simulator, as `Procfile` runs them (`bench/live_system.py`). A fault injector, bounded in count
and in time, meanwhile:
- kills a worker with SIGKILL (pool children included) and starts it again a moment later;
- empties Redis (`FLUSHALL` on the soak's private redis-server, or `FLUSHDB` on the test's own
  db in CI): leases, broker queues, simulator schedule and locks all vanish at once;
- breaks PostgreSQL under every process: `pg_terminate_backend` on each backend of the soak's
  database but the injector's own (a restart as clients see it: every open connection dies);
- re-feeds carrier events already applied, twice and newest first, through
  `telephony.events.handle_event` (duplicates and out-of-order delivery);
- pauses and later resumes campaigns, and archives some for good.
A sampler records live calls per campaign, workspace and organisation, from Call rows and from
the Redis leases, every 50 ms. An API client calls the REST API throughout, through a gunicorn
`web` process with persistent, health-checked database connections as in production, and counts
the answers that are not 2xx: outside fault windows (the target is none) and within them. When
the faults are over and every task is finished or waiting legitimately (a callback or a calling
window still ahead), the run checks `check_invariants` and prints its figures. `run_soak` is what `tests/test_soak_short.py` runs, smaller.
"""
import argparse
import datetime as dt
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOAK_SETTINGS_PATH = ROOT / "bench" / "soak"

OUTCOME_WEIGHTS = {"connected": 33, "no-answer": 18, "busy": 10, "failed": 5, "voicemail": 10, "silent": 5,
                   "callback": 12, "opt-out": 7}


@dataclass
class SoakConfig:
    tasks: int = 20_000
    campaigns_per_workspace: int = 6
    shut_per_workspace: int = 1  # campaigns per workspace whose calling window opens hours from now
    workers: int = 4
    concurrency: int = 2
    time_scale: float = 0.01
    fault_window: float = 240.0  # seconds after start during which faults are injected
    worker_kills: int = 8
    redis_wipes: int = 3
    postgres_faults: int = 6
    event_replays: int = 12
    pauses: int = 4
    archives: int = 2
    seed: int = 10
    timeout: float = 1800.0
    sample_interval: float = 0.05
    api_interval: float = 0.1  # between the API client's requests


# Two cores shared with everything else: a sixth of the CI soak's tasks are dialable now, the rest
# wait behind shut calling windows (which the dispatcher must leave alone).
SHORT = SoakConfig(tasks=1200, campaigns_per_workspace=6, shut_per_workspace=5, workers=3, fault_window=15.0,
                   worker_kills=2, redis_wipes=1, postgres_faults=2, event_replays=3, pauses=1, archives=1,
                   timeout=90.0)


@dataclass
class SoakReport:
    tasks: int = 0
    calls: int = 0
    seconds: float = 0.0
    faults: Counter = field(default_factory=Counter)
    max_live: dict = field(default_factory=dict)  # "org 3 total" → (max sampled from calls, from leases, cap)
    samples: int = 0
    double_dials: int = 0
    leaked_leases: int = 0
    lost_tasks: list = field(default_factory=list)
    waiting_tasks: int = 0
    task_states: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)
    violations: list = field(default_factory=list)
    cap_exceeded: list = field(default_factory=list)
    api_requests: int = 0
    api_errors_outside_faults: list = field(default_factory=list)  # "12.3 s GET /api/v1/slots: 503"
    api_errors_during_faults: list = field(default_factory=list)

    def lines(self):
        out = [f"tasks {self.tasks}, calls {self.calls}, {self.seconds:.0f} s",
               f"task states: {dict(sorted(self.task_states.items()))} (waiting legitimately: {self.waiting_tasks})",
               f"outcomes: {dict(self.outcomes.most_common())}",
               f"faults injected: {dict(sorted(self.faults.items()))}",
               f"max live calls vs cap ({self.samples} samples; from Call rows / from Redis leases):"]
        for node, (from_calls, from_leases, cap) in sorted(self.max_live.items()):
            out.append(f"  {node}: {from_calls} / {from_leases} of {cap}")
        out += [f"double dials: {self.double_dials}", f"leaked leases: {self.leaked_leases}",
                f"lost tasks: {len(self.lost_tasks)}", f"caps exceeded: {len(self.cap_exceeded)}",
                f"invariant violations: {len(self.violations)}",
                f"API requests {self.api_requests}: errors outside fault windows "
                f"{len(self.api_errors_outside_faults)}, during them {len(self.api_errors_during_faults)}"]
        out += [f"  API error: {e}" for e in self.api_errors_outside_faults[:20]]
        out += [f"  API error in a fault window: {e}" for e in self.api_errors_during_faults[:20]]
        out += [f"  {v}" for v in self.violations[:20]]
        out += [f"  lost: {t}" for t in self.lost_tasks[:20]]
        out += [f"  over cap: {c}" for c in self.cap_exceeded[:20]]
        return out

    @property
    def clean(self):
        return not (self.double_dials or self.leaked_leases or self.lost_tasks or self.violations
                    or self.cap_exceeded or self.api_errors_outside_faults)


def _db_retry(fn, attempts=5):
    """Run a harness step, reconnecting when the injector has just killed our connection."""
    from django.db import InterfaceError, OperationalError, connection

    for attempt in range(attempts):
        try:
            return fn()
        except (OperationalError, InterfaceError):
            connection.close()
            if attempt == attempts - 1:
                raise
            time.sleep(0.2)


# --- the world ---------------------------------------------------------------------------------

def _script(rng, attempts):
    """One `_sim` entry per attempt: a weighted outcome, short rings and talks, near callbacks."""
    outcomes, weights = zip(*OUTCOME_WEIGHTS.items())
    entries = []
    for _ in range(attempts):
        entry = {"outcome": rng.choices(outcomes, weights)[0], "ring_ms": rng.randint(300, 4000),
                 "talk_ms": rng.randint(1000, 25000)}
        if entry["outcome"] == "callback":
            entry["callback_in_ms"] = rng.randint(50_000, 300_000)
        entries.append(entry)
    return entries


def _window_open_now(rng, now):
    """A calling window (start, end, timezone) that is open now, local to a random zone."""
    zone = rng.choice(["Europe/London", "Asia/Kolkata", "America/New_York", "Australia/Sydney", "UTC"])
    from zoneinfo import ZoneInfo

    local = now.astimezone(ZoneInfo(zone))
    start = (local - dt.timedelta(hours=rng.randint(1, 3))).time().replace(minute=0, second=0, microsecond=0)
    end = (local + dt.timedelta(hours=rng.randint(2, 4))).time().replace(minute=0, second=0, microsecond=0)
    return start, end, zone


def build_world(config, rng):
    """Two organisations with a hard and a soft workspace each, campaigns and their tasks. Returns
    the campaign ids."""
    from campaigns.models import (
        Agent, CallingNumber, Campaign, CampaignStatus, Organisation, Priority, SlotMode, Task, Workspace,
    )
    from dialer.scheduling import first_attempt_at, resolve_config

    now = dt.datetime.now(dt.UTC)
    layout = [("Soak A", 40, [("hard", 15, SlotMode.HARD), ("soft", 15, SlotMode.SOFT)]),
              ("Soak B", 30, [("soft", 12, SlotMode.SOFT), ("hard", 12, SlotMode.HARD)])]
    workspaces_total = sum(len(spaces) for _, _, spaces in layout)
    per_campaign = max(1, config.tasks // (workspaces_total * config.campaigns_per_workspace))
    campaign_ids, number = [], 0
    for org_name, total, spaces in layout:
        organisation = Organisation.objects.create(name=f"{org_name} {rng.getrandbits(32):08x}", total_slots=total)
        org_phones = []
        for space_name, slots, mode in spaces:
            workspace = Workspace.objects.create(organisation=organisation, name=space_name, slots=slots,
                                                 slot_mode=mode)
            agent = Agent.objects.create(workspace=workspace, name="Soak agent", prompt="Hello ${name}.")
            number += 1
            caller = CallingNumber.objects.create(workspace=workspace, number=f"+1415555{number:04d}",
                                                  calls_per_second=1000)
            for index in range(config.campaigns_per_workspace):
                window = (dt.time(0), dt.time(0), "UTC")
                if index % 3 == 1:
                    window = _window_open_now(rng, now)
                # The last campaigns of each workspace open hours from now: their tasks wait, legitimately.
                if index >= config.campaigns_per_workspace - config.shut_per_workspace:
                    local_hour = (now + dt.timedelta(hours=6)).hour
                    window = (dt.time(local_hour), dt.time((local_hour + 1) % 24), "UTC")
                campaign = Campaign.objects.create(
                    workspace=workspace, type="batch", name=f"{space_name} {index}", agent=agent,
                    calling_number=caller, priority=rng.choice(list(Priority.values)), timezone=window[2],
                    start_at=now - dt.timedelta(minutes=1), calling_start=window[0], calling_end=window[1],
                    max_retries=rng.choice([0, 1, 1, 2]), retry_interval_ms=rng.choice([0, 500, 1500]),
                    retry_outcomes=rng.choice([[], ["voicemail"], ["voicemail", "silent"]]),
                    slots=max(1, slots // config.campaigns_per_workspace + rng.choice([-1, 0, 1])),
                    slot_mode=rng.choice([SlotMode.HARD, SlotMode.SOFT]), status=CampaignStatus.RUNNING,
                    contacts_uploaded_at=now)
                campaign_ids.append(campaign.id)
                tasks = []
                phones = set()
                for _ in range(per_campaign):
                    # One number in 30 is also a contact of another campaign of the organisation.
                    if org_phones and rng.random() < 1 / 30:
                        phone = rng.choice(org_phones)
                    else:
                        phone = f"+4420{rng.randrange(10**8):08d}"
                        org_phones.append(phone)
                    if phone in phones:
                        continue
                    phones.add(phone)
                    task = Task(campaign=campaign, phone=phone,
                                context={"name": "Soak", "_sim": _script(rng, campaign.max_retries + 1)})
                    task.next_attempt_at = first_attempt_at(resolve_config(task, campaign), now)
                    tasks.append(task)
                Task.objects.bulk_create(tasks, batch_size=2000)
    return campaign_ids


# --- sampling ----------------------------------------------------------------------------------

class Sampler(threading.Thread):
    """Live calls per node from Call rows and from Redis leases, every `interval`; keeps the maxima."""

    def __init__(self, interval):
        super().__init__(daemon=True)
        self.interval = interval
        self.stopped = threading.Event()
        self.from_calls = Counter()
        self.from_leases = Counter()
        self.samples = 0

    def run(self):
        from django.db import connection

        while not self.stopped.is_set():
            try:
                self.sample()
            except Exception:  # a killed connection or an emptied Redis: sample again next time
                connection.close()
            time.sleep(self.interval)
        connection.close()

    def sample(self):
        from campaigns.models import Organisation
        from dialer import slots
        from telephony.models import LIVE_CALL_STATUSES, Call

        counts = Counter()
        for org, workspace, campaign in Call.objects.filter(status__in=LIVE_CALL_STATUSES).values_list(
                "organisation_id", "campaign__workspace_id", "campaign_id"):
            counts[("org", org)] += 1
            counts[("workspace", workspace)] += 1
            counts[("campaign", campaign)] += 1
        for node, used in counts.items():
            self.from_calls[node] = max(self.from_calls[node], used)
        for org in Organisation.objects.values_list("id", flat=True):
            usage = slots.usage(org)
            nodes = [(("org", org), usage["organisation"]["used"])]
            nodes += [(("workspace", w), n["used"]) for w, n in usage["workspaces"].items()]
            nodes += [(("campaign", c), n["used"]) for c, n in usage["campaigns"].items()]
            for node, used in nodes:
                self.from_leases[node] = max(self.from_leases[node], used)
        self.samples += 1

    def stop(self):
        self.stopped.set()
        self.join()


# --- an API client -----------------------------------------------------------------------------

# A fault window: from a fault until this long after it. A request in flight when every database
# connection is killed may fail (a 503 to retry); one that starts after it must not.
API_FAULT_WINDOW_SECONDS = 2.0


class ApiClient(threading.Thread):
    """Calls the REST API's reads in turn until stopped, as a client would; keeps every answer."""

    def __init__(self, base_url, raw_key, campaign_ids, interval):
        super().__init__(daemon=True)
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {raw_key}"}
        self.paths = ["/api/v1/campaigns", "/api/v1/slots", "/api/v1/agents", "/api/v1/dnc?limit=10"]
        for campaign_id in campaign_ids[:3]:
            self.paths += [f"/api/v1/campaigns/{campaign_id}", f"/api/v1/campaigns/{campaign_id}/tasks?limit=20"]
        self.interval = interval
        self.stopped = threading.Event()
        self.answers = []  # (monotonic start, monotonic end, path, status code or exception name)

    def run(self):
        import requests

        session = requests.Session()
        index = 0
        while not self.stopped.is_set():
            path = self.paths[index % len(self.paths)]
            index += 1
            began = time.monotonic()
            try:
                status = session.get(self.base_url + path, headers=self.headers, timeout=10).status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            self.answers.append((began, time.monotonic(), path, status))
            time.sleep(self.interval)

    def stop(self):
        self.stopped.set()
        self.join()

    def errors(self, fault_times, started):
        """(outside fault windows, during them): every answer that is not 2xx, as readable lines. A
        request is in a fault window when it was in flight at any moment of one."""
        outside, during = [], []
        for began, ended, path, status in self.answers:
            if isinstance(status, int) and 200 <= status < 300:
                continue
            line = f"{began - started:.1f} s GET {path}: {status}"
            in_window = any(began <= fault + API_FAULT_WINDOW_SECONDS and ended >= fault for fault in fault_times)
            (during if in_window else outside).append(line)
        return outside, during


def _start_web(system, env):
    """The `web` process on a free loopback port with production's connection settings; its URL."""
    import socket

    import requests

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # No control socket: its default path is one per machine, shared with any other gunicorn.
    system._spawn("web", [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
                          "--workers", "1", "--no-control-socket"], env={**system.env, **env})
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"{base_url}/api/v1/ready", timeout=10)  # any answer will do: it is up
            return base_url
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError("the web process did not start")


# --- faults ------------------------------------------------------------------------------------

class FaultInjector:
    """Draws a bounded plan of faults over the fault window and applies each at its moment."""

    def __init__(self, config, system, rng, wipe_redis, campaign_ids):
        self.system = system
        self.rng = rng
        self.wipe_redis = wipe_redis
        self.campaign_ids = campaign_ids
        self.injected = Counter()
        self.fault_times = []  # monotonic instants at which faults were applied
        self.paused = []
        plan = (["kill-worker"] * config.worker_kills + ["wipe-redis"] * config.redis_wipes
                + ["postgres"] * config.postgres_faults + ["replay-events"] * config.event_replays
                + ["pause"] * config.pauses + ["archive"] * config.archives)
        self.plan = sorted((rng.uniform(2.0, config.fault_window), fault) for fault in plan)
        self.restarts = []  # (at, worker index)
        self.workers = dict(enumerate(system.worker_processes))
        self.fault_window = config.fault_window

    def step(self, elapsed):
        """Apply every fault due by `elapsed` seconds; True while any fault or restart remains."""
        for at, index in [r for r in self.restarts if r[0] <= elapsed]:
            self.workers[index] = self.system.start_worker(index)
            self.restarts.remove((at, index))
        while self.plan and self.plan[0][0] <= elapsed:
            _, fault = self.plan.pop(0)
            self.fault_times.append(time.monotonic())
            getattr(self, "_" + fault.replace("-", "_"))(elapsed)
            self.injected[fault] += 1
        if elapsed >= self.fault_window:
            for campaign in self.paused:
                _db_retry(lambda c=campaign: _resume(c))
                self.injected["resume"] += 1
            self.paused = []
        return bool(self.plan or self.restarts or self.paused)

    def _kill_worker(self, elapsed):
        index = self.rng.choice(sorted(self.workers))
        self.system.kill_worker(self.workers.pop(index))
        self.restarts.append((elapsed + self.rng.uniform(0.5, 2.0), index))

    def _wipe_redis(self, elapsed):
        self.wipe_redis()

    def _postgres(self, elapsed):
        from django.db import connection

        def terminate():
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE datname = current_database() AND pid <> pg_backend_pid()")
                return cursor.fetchone()[0]
        self.injected["postgres-backends-killed"] += _db_retry(terminate)

    def _replay_events(self, elapsed):
        from telephony.events import handle_event
        from telephony.models import CallEvent

        def recent():
            return list(CallEvent.objects.filter(applied=True, call__isnull=False).exclude(kind="analysis")
                        .order_by("-id")[:60])
        events = _db_retry(recent)
        # Newest first, each twice: a late ringing after its completed, a completed delivered again.
        for event in events + events:
            _db_retry(lambda e=event: handle_event(event_from_audit(e)))
        self.injected["events-redelivered"] += 2 * len(events)

    def _pause(self, elapsed):
        from campaigns.actions.controls import do_pause_campaign
        from campaigns.models import Campaign, CampaignStatus

        def pause():
            running = list(Campaign.objects.filter(id__in=self.campaign_ids, status=CampaignStatus.RUNNING))
            if not running:
                return None
            campaign = self.rng.choice(running)
            do_pause_campaign(campaign)
            return campaign
        campaign = _db_retry(pause)
        if campaign is not None:
            self.paused.append(campaign)

    def _archive(self, elapsed):
        from campaigns.actions.controls import do_archive_campaign
        from campaigns.models import Campaign, CampaignStatus

        def archive():
            open_ones = list(Campaign.objects.filter(id__in=self.campaign_ids, status__in=[
                CampaignStatus.RUNNING, CampaignStatus.SCHEDULED]))
            if open_ones:
                do_archive_campaign(self.rng.choice(open_ones))
        _db_retry(archive)


def _resume(campaign):
    from campaigns.actions.controls import do_resume_campaign

    campaign.refresh_from_db()
    if campaign.status == "paused":
        do_resume_campaign(campaign)


def event_from_audit(call_event):
    """The carrier event a stored CallEvent recorded, to deliver it again."""
    from telephony.rules import EventKind, NormalizedEvent

    raw = call_event.payload
    at_ms = raw.get("at_ms")
    return NormalizedEvent(
        carrier=call_event.carrier, kind=EventKind(call_event.kind), carrier_call_id=call_event.carrier_call_id,
        call_id=raw.get("call_id") or str(call_event.call_id), carrier_status=raw.get("carrier_status", ""),
        occurred_at=dt.datetime.fromtimestamp(at_ms / 1000, tz=dt.UTC) if at_ms else None,
        duration_seconds=raw.get("duration"), cost=raw.get("cost"), answered_by=raw.get("answered_by", ""),
        recording_url=raw.get("recording_url", ""), analysis=raw.get("analysis"), raw={**raw, "replayed": True})


# --- the end -----------------------------------------------------------------------------------

def _unfinished(now):
    """(lost, waiting): tasks that should be moving but are not, and tasks waiting legitimately."""
    from campaigns.models import Task, TaskStatus
    from telephony.models import OPEN_CALL_STATUSES

    grace = now - dt.timedelta(seconds=10)
    lost, waiting = [], 0
    pending = Task.objects.filter(status__in=[TaskStatus.QUEUED, TaskStatus.IN_PROGRESS, TaskStatus.PAUSED])
    for task_id, status, next_at, campaign_status in pending.values_list(
            "id", "status", "next_attempt_at", "campaign__status"):
        if status == TaskStatus.IN_PROGRESS:
            if not Task.objects.filter(id=task_id, calls__status__in=OPEN_CALL_STATUSES).exists():
                lost.append(f"task {task_id} in progress without a live or wrap-up call")
        elif status == TaskStatus.PAUSED and campaign_status != "paused":
            lost.append(f"task {task_id} paused in a {campaign_status} campaign")
        elif status == TaskStatus.QUEUED and (next_at is None or next_at <= grace):
            lost.append(f"task {task_id} queued, due since {next_at}")
        else:
            waiting += 1
    return lost, waiting


def _settled():
    """True when every call has ended and no task is due now: what is left waits for a later moment."""
    from django.utils import timezone

    from campaigns.models import Task, TaskStatus
    from telephony.models import OPEN_CALL_STATUSES, Call

    now = timezone.now()
    return (not Call.objects.filter(status__in=OPEN_CALL_STATUSES).exists()
            and not Task.objects.filter(status=TaskStatus.IN_PROGRESS).exists()
            and not Task.objects.filter(status=TaskStatus.QUEUED, next_attempt_at__lte=now).exists())


def _double_dials():
    """Calls the carrier placed more than once, and overlapping live intervals for one number."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM (SELECT call_id FROM telephony_callevent WHERE carrier_call_id <> '' "
                       "AND call_id IS NOT NULL GROUP BY call_id HAVING count(DISTINCT carrier_call_id) > 1) d")
        placed_twice = cursor.fetchone()[0]
        cursor.execute("""
            SELECT count(*) FROM telephony_call a JOIN telephony_call b
              ON a.organisation_id = b.organisation_id AND a.to_number = b.to_number AND a.id < b.id
             AND a.created_at < coalesce(b.ended_at, 'infinity') AND b.created_at < coalesce(a.ended_at, 'infinity')
        """)
        overlapping = cursor.fetchone()[0]
    return placed_twice + overlapping


def _leaked_leases():
    from campaigns.models import Organisation
    from config.redis_client import get_redis
    from dialer import keys
    from telephony.models import LIVE_CALL_STATUSES, Call

    live = {str(i) for i in Call.objects.filter(status__in=LIVE_CALL_STATUSES).values_list("id", flat=True)}
    leaked = 0
    for org in Organisation.objects.values_list("id", flat=True):
        held = set(get_redis().zrange(keys.organisation_leases(org), 0, -1))
        held |= set(get_redis().zrange(keys.expired_leases(org), 0, -1))
        leaked += len(held - live)
    return leaked


def _caps():
    """{(kind, id): (cap, hard)} for every node, and a readable name for each."""
    from campaigns.models import Campaign, Organisation, Workspace

    caps, names = {}, {}
    for org in Organisation.objects.all():
        caps[("org", org.id)] = (org.total_slots, True)
        names[("org", org.id)] = f"{org.name} total"
    for ws in Workspace.objects.select_related("organisation"):
        caps[("workspace", ws.id)] = (ws.slots, ws.slot_mode == "hard")
        names[("workspace", ws.id)] = f"{ws.organisation.name} / {ws.name} ({ws.slot_mode})"
    for campaign in Campaign.objects.select_related("workspace__organisation"):
        caps[("campaign", campaign.id)] = (campaign.slots, campaign.slot_mode == "hard")
        names[("campaign", campaign.id)] = (f"{campaign.workspace.organisation.name} / {campaign.workspace.name} / "
                                            f"{campaign.name} ({campaign.slot_mode})")
    return caps, names


def _soak_system(**kwargs):
    """A LiveSystem logging under test-artifacts/soak/, apart from other end-to-end runs."""
    from bench.live_system import LiveSystem

    class SoakSystem(LiveSystem):
        def __init__(self, **options):
            super().__init__(**options)
            self.log_dir = ROOT / "test-artifacts" / "soak"
            self.log_dir.mkdir(parents=True, exist_ok=True)

    return SoakSystem(**kwargs)


def run_soak(config, wipe_redis, log=print, **process_env):
    """Build the world, run the system under faults until it settles, check it. Returns a SoakReport.

    Runs against the database and Redis of the current Django settings; `wipe_redis()` empties
    that Redis (all of it: the broker is in it too).
    """
    from django.db import connections

    from campaigns.models import Campaign, Task
    from campaigns.actions.tenancy import do_create_api_key
    from dialer.invariants import check_invariants
    from dialer.maintenance import ORPHAN_LEASE_AFTER
    from telephony.models import Call
    rng = random.Random(config.seed)
    report = SoakReport()
    campaign_ids = build_world(config, rng)
    report.tasks = Task.objects.count()
    log(f"soak: {report.tasks} tasks in {len(campaign_ids)} campaigns; {config.workers} workers")
    env = dict(DJANGO_SETTINGS_MODULE="soak_settings", PYTHONPATH=f"{SOAK_SETTINGS_PATH}{os.pathsep}{ROOT}",
               LOG_LEVEL="WARNING", **process_env)
    sampler = Sampler(config.sample_interval)
    api_workspace = Campaign.objects.get(id=campaign_ids[0]).workspace
    _, raw_key = do_create_api_key(api_workspace, name="soak API client")
    api_campaigns = list(Campaign.objects.filter(workspace=api_workspace).values_list("id", flat=True))
    started = time.monotonic()
    with _soak_system(workers=config.workers, concurrency=config.concurrency, time_scale=config.time_scale,
                    **env) as system:
        simulator = next(p for p in system.processes if p not in system.worker_processes)
        base_url = _start_web(system, {"DATABASE_CONN_MAX_AGE": "60", "DATABASE_CONN_HEALTH_CHECKS": "true"})
        api_client = ApiClient(base_url, raw_key, api_campaigns, config.api_interval)
        injector = FaultInjector(config, system, rng, wipe_redis, campaign_ids)
        started = time.monotonic()
        sampler.start()
        api_client.start()
        deadline = started + config.timeout
        last_log = started
        while time.monotonic() < deadline:
            elapsed = time.monotonic() - started
            faults_left = injector.step(elapsed)
            if not faults_left and _db_retry(_settled):
                break
            if simulator.poll() is not None:
                simulator = system._spawn("simulator", [sys.executable, "manage.py", "run_simulator"])
                injector.injected["simulator-restarted"] += 1
            if time.monotonic() - last_log > 15:
                last_log = time.monotonic()
                log(f"  {elapsed:.0f} s: {_db_retry(Call.objects.count)} calls, "
                    f"{_db_retry(Task.objects.filter(status__in=['completed', 'archived']).count)} tasks done")
            time.sleep(0.2)
        # Give the reaper a turn after the last call ended before judging the leases (invariant 7).
        # A lease whose release was lost (a worker killed between a call's end and its release)
        # is freed by the reaper once older than ORPHAN_LEASE_AFTER: when some remain, wait that long.
        time.sleep(6)
        if _db_retry(_leaked_leases):
            time.sleep(ORPHAN_LEASE_AFTER.total_seconds() + 6)
        sampler.stop()
        api_client.stop()
    connections.close_all()
    report.seconds = time.monotonic() - started
    report.faults = injector.injected
    report.samples = sampler.samples
    report.api_requests = len(api_client.answers)
    report.api_errors_outside_faults, report.api_errors_during_faults = api_client.errors(
        injector.fault_times, started)
    caps, names = _caps()
    for node, (cap, hard) in caps.items():
        from_calls, from_leases = sampler.from_calls[node], sampler.from_leases[node]
        if node[0] != "campaign" or max(from_calls, from_leases) > cap:
            report.max_live[names[node]] = (from_calls, from_leases, f"{cap} {'hard' if hard else 'soft'}")
        if hard and max(from_calls, from_leases) > cap:
            report.cap_exceeded.append(f"{names[node]}: {from_calls} calls / {from_leases} leases over {cap}")
    report.calls = Call.objects.count()
    report.task_states = _tally(Task.objects, "status")
    report.outcomes = _tally(Call.objects, "outcome")
    report.lost_tasks, report.waiting_tasks = _unfinished(dt.datetime.now(dt.UTC))
    report.double_dials = _double_dials()
    report.leaked_leases = _leaked_leases()
    report.violations = [str(v) for v in check_invariants()]
    return report


def _tally(queryset, column):
    from django.db.models import Count

    return Counter({row[column]: row["n"] for row in queryset.order_by().values(column).annotate(n=Count("id"))})


# --- make soak ---------------------------------------------------------------------------------

def _private_redis(port):
    """A redis-server of our own, so emptying it disturbs nobody else on this machine."""
    process = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                                "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return process, client
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"redis-server on port {port} did not start")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = SoakConfig()
    parser.add_argument("--tasks", type=int, default=defaults.tasks)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--fault-window", type=float, default=defaults.fault_window)
    parser.add_argument("--timeout", type=float, default=defaults.timeout)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--redis-port", type=int, default=6390)
    parser.add_argument("--database", default="dialer_soak")
    parser.add_argument("--json", help="Also write the figures to this file.")
    args = parser.parse_args()
    config = SoakConfig(tasks=args.tasks, workers=args.workers, fault_window=args.fault_window, seed=args.seed,
                        timeout=args.timeout)

    redis_process, redis_client = _private_redis(args.redis_port)
    try:
        from throwaway_database import use_throwaway_database  # bench/ is on sys.path

        use_throwaway_database(args.database).recreate()  # kept afterwards, for inspection
        os.environ.update(REDIS_URL=f"redis://127.0.0.1:{args.redis_port}/0", DATABASE_CONN_MAX_AGE="0",
                          LOG_LEVEL="WARNING")
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        report = run_soak(config, wipe_redis=redis_client.flushall)
    finally:
        redis_process.terminate()
        redis_process.wait()
    print("\n".join(report.lines()))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "tasks": report.tasks, "calls": report.calls, "seconds": round(report.seconds),
            "faults": report.faults, "max_live": report.max_live, "double_dials": report.double_dials,
            "leaked_leases": report.leaked_leases, "lost_tasks": len(report.lost_tasks),
            "violations": report.violations, "task_states": report.task_states,
            "api_requests": report.api_requests, "api_errors_outside_faults": report.api_errors_outside_faults,
            "api_errors_during_faults": report.api_errors_during_faults}, indent=2, default=str))
    sys.exit(0 if report.clean else 1)


if __name__ == "__main__":
    main()
