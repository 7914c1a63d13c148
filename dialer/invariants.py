"""The invariant checker: docs/product.md §3, as far as stored state shows it. Reads only.

`check_invariants(organisation_id=None, now=None)` reads PostgreSQL (organisations, workspaces,
campaigns, tasks, calls) and Redis (the slot lease sets and records of `dialer/keys.py`) and
returns every `Violation` it sees, [] when the state is sound. It never writes, so it is safe to
run against production at any time (`manage.py check_invariants`), in tests and at the end of
the soak (`bench/soak.py`).

What it checks, per organisation:
- caps: live calls over the organisation total or a hard workspace or campaign allocation, both
  counted from Call rows and from the Redis leases not yet past expiry at `now` (invariant 1);
- duplicates: two calls not ended (live or in wrap-up) for one task, or for one number in the
  organisation (invariant 4, with wrap-up counted as the dispatcher counts it);
- windows: a call admitted outside its calling window, before its start or at or after its end,
  judged at `Call.created_at` by the rules the call was admitted under (the window, zone, start,
  end and attempt limit the dispatcher recorded on it), so a later update, pause or archive never
  makes a past call look wrong; a call admitted before those were recorded is judged by its
  task's config as it is now (invariant 5);
- attempts: a call numbered past the attempt limit it was admitted under, attempt numbers with
  gaps, or `Task.attempts_made` disagreeing with the task's calls (invariant 6);
- leases: a lease whose call is not live, a live call without a lease, or a lease whose fencing
  token is not the call's (invariants 7 and 9);
- task states: in progress without a call not ended, such a call whose task is not in progress,
  queued without a next attempt time, finished without a reason (invariant 8).

Caps and leases count live calls: a call in wrap-up (the carrier ended it; its analysis is still
due) has given its slot back.

Some of these are momentarily untrue between a commit and the Redis step that follows it (a
call has ended but its lease is released right after the commit; a lease is taken just before
the attempt's row commits). Judge lease findings on a quiet system, or re-check before acting on
one. While an organisation's lease epoch is missing (Redis lost its data and the dispatcher has
not yet rebuilt the leases) its lease checks are skipped: nothing is admitted in that state.
"""
import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass
from enum import StrEnum

from django.utils import timezone

from campaigns.models import Campaign, Organisation, SlotMode, Task, TaskStatus, Workspace
from config.redis_client import get_redis
from dialer import keys
from dialer.scheduling import resolve_config
from dialer.windows import CallingWindow, is_open
from telephony.models import LIVE_CALL_STATUSES, OPEN_CALL_STATUSES, Call

TERMINAL_TASK_STATUSES = (TaskStatus.COMPLETED, TaskStatus.ARCHIVED)
TASK_CONFIG_FIELDS = (
    "id", "campaign_id", "status", "attempts_made", "next_attempt_at", "completion_reason", "agent_id",
    "calling_number_id", "timezone", "calling_start", "calling_end", "start_after", "end_after", "max_attempts",
    "intervals_ms", "priorities", "retry_outcomes",
)


# What the dispatcher records on a call at admission (dialer.dispatcher.RECORD_ATTEMPTS_SQL).
ADMISSION_RULE_FIELDS = ("window_start", "window_end", "window_timezone", "window_days", "start_after", "end_at",
                         "max_attempts")


@dataclass(frozen=True)
class AdmissionRules:
    window: CallingWindow
    start_after: dt.datetime
    end_at: dt.datetime | None
    max_attempts: int


class Kind(StrEnum):
    OVER_ORGANISATION_TOTAL = "over-organisation-total"
    OVER_HARD_CAP = "over-hard-cap"
    TWO_LIVE_CALLS_FOR_TASK = "two-live-calls-for-task"
    TWO_LIVE_CALLS_FOR_NUMBER = "two-live-calls-for-number"
    OUTSIDE_WINDOW = "outside-window"
    BEFORE_START = "before-start"
    AFTER_END = "after-end"
    ATTEMPT_OVER_LIMIT = "attempt-over-limit"
    ATTEMPTS_MISMATCH = "attempts-mismatch"
    LEASE_WITHOUT_LIVE_CALL = "lease-without-live-call"
    LIVE_CALL_WITHOUT_LEASE = "live-call-without-lease"
    LEASE_TOKEN_MISMATCH = "lease-token-mismatch"
    INVALID_TASK_STATE = "invalid-task-state"


@dataclass(frozen=True)
class Violation:
    kind: Kind
    organisation_id: int
    subject: str  # "campaign 12", "task 5", "call <uuid>", "number +44…"
    detail: str

    def __str__(self):
        return f"[{self.kind}] organisation {self.organisation_id}, {self.subject}: {self.detail}"


def check_invariants(organisation_id=None, now=None):
    """Every violation seen in the stored state of one organisation, or of all; [] when sound."""
    now = now or timezone.now()
    if organisation_id is None:
        organisation_ids = list(Organisation.objects.order_by("id").values_list("id", flat=True))
    else:
        organisation_ids = [organisation_id]
    violations = []
    for org_id in organisation_ids:
        violations += _check_organisation(org_id, now)
    return violations


def _check_organisation(organisation_id, now):
    tree = _Tree.load(organisation_id)
    open_calls = list(Call.objects.filter(organisation_id=organisation_id, status__in=OPEN_CALL_STATUSES)
                      .values("id", "task_id", "campaign_id", "to_number", "attempt", "lease_token", "status"))
    live = [call for call in open_calls if call["status"] in LIVE_CALL_STATUSES]
    found = []
    found += _caps(tree, Counter(call["campaign_id"] for call in live), "calls")
    found += _duplicates(organisation_id, open_calls)
    found += _calls_against_config(organisation_id)
    found += _task_states(organisation_id, open_calls)
    found += _leases(tree, live, now)
    return found


@dataclass
class _Tree:
    """The organisation's allocations as PostgreSQL holds them, every campaign included."""

    organisation_id: int
    total: int
    workspaces: dict  # id → (slots, mode)
    campaigns: dict  # id → (workspace id, slots, mode)

    @classmethod
    def load(cls, organisation_id):
        total = Organisation.objects.values_list("total_slots", flat=True).get(id=organisation_id)
        workspaces = {wid: (slots, mode) for wid, slots, mode in Workspace.objects
                      .filter(organisation_id=organisation_id).values_list("id", "slots", "slot_mode")}
        campaigns = {cid: (wid, slots, mode) for cid, wid, slots, mode in Campaign.objects
                     .filter(workspace__organisation_id=organisation_id)
                     .values_list("id", "workspace_id", "slots", "slot_mode")}
        return cls(organisation_id, total, workspaces, campaigns)


def _caps(tree, per_campaign, source):
    """Live use per node (from `source`: "calls" or "leases") against the total and the hard caps."""
    org = tree.organisation_id
    found = []
    used_total = sum(per_campaign.values())
    if used_total > tree.total:
        found.append(Violation(Kind.OVER_ORGANISATION_TOTAL, org, f"organisation {org}",
                               f"{used_total} live {source} over a total of {tree.total}"))
    per_workspace = Counter()
    for campaign_id, used in per_campaign.items():
        workspace_id, slots, mode = tree.campaigns.get(campaign_id, (None, None, None))
        per_workspace[workspace_id] += used
        if mode == SlotMode.HARD and used > slots:
            found.append(Violation(Kind.OVER_HARD_CAP, org, f"campaign {campaign_id}",
                                   f"{used} live {source} over its hard allocation of {slots}"))
    for workspace_id, used in per_workspace.items():
        slots, mode = tree.workspaces.get(workspace_id, (None, None))
        if mode == SlotMode.HARD and used > slots:
            found.append(Violation(Kind.OVER_HARD_CAP, org, f"workspace {workspace_id}",
                                   f"{used} live {source} over its hard allocation of {slots}"))
    return found


def _duplicates(organisation_id, open_calls):
    found = []
    for task_id, count in Counter(call["task_id"] for call in open_calls).items():
        if count > 1:
            found.append(Violation(Kind.TWO_LIVE_CALLS_FOR_TASK, organisation_id, f"task {task_id}",
                                   f"{count} calls not ended"))
    for number, count in Counter(call["to_number"] for call in open_calls).items():
        if count > 1:
            found.append(Violation(Kind.TWO_LIVE_CALLS_FOR_NUMBER, organisation_id, f"number {number}",
                                   f"{count} calls not ended in the organisation"))
    return found


def _calls_against_config(organisation_id):
    """Every call against its task's config: window, start, end and attempt limit; attempt counts."""
    campaigns = Campaign.objects.filter(workspace__organisation_id=organisation_id).in_bulk()
    tasks = (Task.objects.filter(campaign__workspace__organisation_id=organisation_id)
             .only(*TASK_CONFIG_FIELDS).order_by())
    calls_by_task = defaultdict(list)
    for call in (Call.objects.filter(organisation_id=organisation_id).order_by()
                 .values_list("id", "task_id", "attempt", "created_at", *ADMISSION_RULE_FIELDS)):
        calls_by_task[call[1]].append(call)
    found = []
    for task in tasks.iterator(chunk_size=5000):
        calls = calls_by_task.get(task.id, [])
        config = resolve_config(task, campaigns[task.campaign_id])
        for call_id, _, attempt, created_at, *rules in calls:
            found += _call_against_config(organisation_id, call_id, attempt, created_at,
                                          _admission_rules(rules, config))
        attempts = sorted(call[2] for call in calls)
        if attempts != list(range(1, len(attempts) + 1)) or task.attempts_made != len(attempts):
            found.append(Violation(Kind.ATTEMPTS_MISMATCH, organisation_id, f"task {task.id}",
                                   f"attempts_made is {task.attempts_made}; its calls are attempts {attempts}"))
    return found


def _admission_rules(recorded, config):
    """The rules a call was admitted under: those recorded on it, else (an older call) `config`'s."""
    window_start, window_end, window_timezone, window_days, start_after, end_at, max_attempts = recorded
    if window_start is None:
        return AdmissionRules(config.window, config.start_after, config.end_at, config.max_attempts)
    window = CallingWindow(start=window_start, end=window_end, timezone=window_timezone, days=frozenset(window_days))
    return AdmissionRules(window, start_after, end_at, max_attempts)


def _call_against_config(organisation_id, call_id, attempt, created_at, config):
    subject = f"call {call_id}"
    found = []
    if attempt > config.max_attempts:
        found.append(Violation(Kind.ATTEMPT_OVER_LIMIT, organisation_id, subject,
                               f"attempt {attempt} of at most {config.max_attempts}"))
    if created_at < config.start_after:
        found.append(Violation(Kind.BEFORE_START, organisation_id, subject,
                               f"admitted {created_at:%Y-%m-%d %H:%M:%S%z}, before the start "
                               f"{config.start_after:%Y-%m-%d %H:%M:%S%z}"))
    if config.end_at is not None and created_at >= config.end_at:
        found.append(Violation(Kind.AFTER_END, organisation_id, subject,
                               f"admitted {created_at:%Y-%m-%d %H:%M:%S%z}, at or after the end "
                               f"{config.end_at:%Y-%m-%d %H:%M:%S%z}"))
    if not is_open(config.window, created_at):
        window = config.window
        found.append(Violation(Kind.OUTSIDE_WINDOW, organisation_id, subject,
                               f"admitted {created_at:%Y-%m-%d %H:%M:%S%z}, outside {window.start:%H:%M}–"
                               f"{window.end:%H:%M} {window.timezone} on days {sorted(window.days)}"))
    return found


def _task_states(organisation_id, open_calls):
    found = []
    call_by_task = {call["task_id"]: call for call in open_calls}
    tasks = Task.objects.filter(campaign__workspace__organisation_id=organisation_id).order_by()
    for task_id, attempts_made in (tasks.filter(status=TaskStatus.IN_PROGRESS)
                                   .values_list("id", "attempts_made").iterator(chunk_size=5000)):
        call = call_by_task.get(task_id)
        if call is None:
            found.append(_task_state(organisation_id, task_id, "in progress without a live or wrap-up call"))
        elif call["attempt"] != attempts_made:
            found.append(_task_state(organisation_id, task_id,
                                     f"in progress on attempt {attempts_made}, its call is attempt "
                                     f"{call['attempt']}"))
    not_in_progress = (tasks.filter(id__in=list(call_by_task)).exclude(status=TaskStatus.IN_PROGRESS)
                       .values_list("id", "status"))
    for task_id, status in not_in_progress:
        found.append(_task_state(organisation_id, task_id, f"{status} while its call {call_by_task[task_id]['id']} "
                                                           f"is {call_by_task[task_id]['status']}"))
    for task_id in tasks.filter(status=TaskStatus.QUEUED, next_attempt_at__isnull=True).values_list("id", flat=True):
        found.append(_task_state(organisation_id, task_id, "queued without a next attempt time"))
    for task_id, status in (tasks.filter(status__in=TERMINAL_TASK_STATUSES, completion_reason="")
                            .values_list("id", "status")):
        found.append(_task_state(organisation_id, task_id, f"{status} without a completion reason"))
    for task_id, status in tasks.exclude(status__in=TaskStatus.values).values_list("id", "status"):
        found.append(_task_state(organisation_id, task_id, f"unknown status {status!r}"))
    return found


def _task_state(organisation_id, task_id, detail):
    return Violation(Kind.INVALID_TASK_STATE, organisation_id, f"task {task_id}", detail)


def _leases(tree, live, now):
    """Redis leases against live Call rows, and the caps as the leases count them."""
    org = tree.organisation_id
    client = get_redis()
    pipe = client.pipeline(transaction=False)
    pipe.exists(keys.epoch(org))
    pipe.zrange(keys.organisation_leases(org), 0, -1, withscores=True)
    pipe.zrange(keys.expired_leases(org), 0, -1)
    pipe.hgetall(keys.lease_records(org))
    has_epoch, leased, expired, records = pipe.execute()
    if not has_epoch:
        return []
    now_ms = int(now.timestamp() * 1000)
    found = []
    live_by_id = {str(call["id"]): call for call in live}
    holding = {call_id for call_id, _ in leased} | set(expired)
    for call_id in sorted(holding - set(live_by_id)):
        found.append(Violation(Kind.LEASE_WITHOUT_LIVE_CALL, org, f"call {call_id}",
                               f"holds a slot lease ({records.get(call_id, 'no record')}) but is not live"))
    for call_id in sorted(set(live_by_id) - holding):
        found.append(Violation(Kind.LIVE_CALL_WITHOUT_LEASE, org, f"call {call_id}",
                               f"{live_by_id[call_id]['to_number']} is live without a slot lease"))
    for call_id in sorted(set(live_by_id) & holding):
        record = records.get(call_id)
        token = int(record.split(" ", 1)[0]) if record else None
        if token != live_by_id[call_id]["lease_token"]:
            found.append(Violation(Kind.LEASE_TOKEN_MISMATCH, org, f"call {call_id}",
                                   f"lease token {token}, the call holds {live_by_id[call_id]['lease_token']}"))
    per_campaign = Counter()
    for call_id, expiry_ms in leased:
        record = records.get(call_id)
        if expiry_ms > now_ms and record:
            per_campaign[int(record.split(" ")[2])] += 1
    found += _caps(tree, per_campaign, "leases")
    return found

