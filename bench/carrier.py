"""The carrier path end to end: the whole system on the Twilio provider against a local stand-in.

Run from the repository root with PostgreSQL and Redis up:

    .venv/bin/python bench/carrier.py [--scenarios lat0,lat300,lat1000,big300,big1000,burst,flood]
        [--seconds 15] [--web-workers 2] [--web-threads 4] [--dialer-pool threads] [--dialer-concurrency 32]

A quick run (about a minute and a half): `--scenarios lat300,flood --seconds 8`.

What runs: the Procfile's `web`, `dialer`, `worker` and `beat` (started by honcho, as `make run`
does) with TELEPHONY_PROVIDER=twilio, TWILIO_API_BASE_URL pointed at `bench/twilio_standin.py`
running in this process, and PUBLIC_BASE_URL at the gunicorn, so the stand-in's signed status
callbacks and the agent's analysis come back through our webhooks. Everything binds 127.0.0.1
on free ports, in a throwaway database (`dialer_bench_carrier`, dropped at the end) and Redis db 6
(`--redis-url`; flushed before and after: use a db nobody else uses).

Scenarios (each a new organisation with one hard workspace and batch campaign of `slots` slots,
one calling number, tasks seeded at once and the dispatcher nudged; every call answers, talks
and is analysed `connected`, so each task is one call):
- lat0 / lat300 / lat1000: 40 slots, create latency 0 / 300 / 1,000 ms, ring 0.3 s, talk 1.5 s;
- big300 / big1000: 200 slots, 300 / 1,000 ms, ring 1 s, talk 4 s;
- burst: 400 slots and 400 tasks at 300 ms (calls long enough not to end during the fill):
  how fast one worker node sends a full organisation's calls;
- flood: organisation A, 100 tasks on one number limited to 1 call/s (the stand-in also answers
  429 past 1 call/s per number); organisation B then creates a task every 1.5 s through the
  REST API on its own number. B's wait is from just before its POST to its create request
  arriving at the stand-in.

Figures: utilisation while work waits = the time the stand-in holds calls (from a create
request's arrival to the call's end) over slots × the time from the first to the last create
request (while tasks were still queued); admission → carrier request (the Call row's admission
time to the request's arrival) p50/p99; placements/s (mean over that window, and the busiest
second); B's wait. Printed beside docs/product.md §4's targets, never asserted. Also, to see
where the idle slot-time goes: a slot's mean gap between one call's end and the next call's create
request, split into the call's end → our storing its `completed`, → the next admission, → that
call's create request (calls paired by order: the k-th to end frees the slot of the
(k + slots)-th request).
"""
import argparse
import datetime as dt
import math
import os
import statistics
import sys
import time
from pathlib import Path

import requests
from live_system import ProcfileProcesses, cpu_seconds_of, free_port, process_parents, process_tree
from throwaway_database import use_throwaway_database

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "bench-standin-token"

SCENARIOS = {
    "lat0": dict(slots=40, latency=0.0, ring=0.3, talk=1.5),
    "lat300": dict(slots=40, latency=0.3, ring=0.3, talk=1.5),
    "lat1000": dict(slots=40, latency=1.0, ring=0.3, talk=1.5),
    "big300": dict(slots=200, latency=0.3, ring=1.0, talk=4.0),
    "big1000": dict(slots=200, latency=1.0, ring=1.0, talk=4.0),
    "burst": dict(slots=400, latency=0.3, ring=1.0, talk=6.0, tasks=400),
}
TARGET_UTILISATION = 90.0
TARGET_EXTRA_P99_MS = 100
TARGET_OTHER_TENANT_S = 1.0
TARGET_PLACEMENTS = 200


def percentile(samples, fraction):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def verdict(ok):
    return "met" if ok else "MISSED"


def uptime():
    return Path("/proc/loadavg").read_text().split()[:3]


def cpu_seconds(root_pid):
    """CPU seconds used so far by each Procfile process (with its children), by Procfile name."""
    parents = process_parents()
    totals = {}
    for top in process_tree(parents, root_pid):
        try:
            command = Path(f"/proc/{top}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if not command.startswith("/bin/sh -c "):
            continue  # honcho's own processes; each Procfile line runs under a shell
        name = next((n for n, marker in (("web", "gunicorn"), ("dialer", "-n dialer"), ("worker", "-n worker"),
                                         ("beat", " beat ")) if marker in command), command[11:30])
        totals[name] = totals.get(name, 0.0) + cpu_seconds_of(process_tree(parents, top))
    totals["bench + stand-in"] = sum(os.times()[:2])
    return totals


def wait_until_up(base_url, timeout=60):
    from config.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(f"{base_url}/api/v1/slots", timeout=1)
            replies = app.control.ping(timeout=1)
            names = {name.split("@")[0] for reply in replies for name in reply}
            if {"dialer", "worker"} <= names:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError("the system did not come up: see test-artifacts/carrier-bench.log")


def make_tenant(label, slots, number, calls_per_second, realtime=False):
    """(organisation, campaign, raw API key) for a new tenant with one hard workspace and campaign."""
    from django.utils import timezone

    from campaigns.models import Agent, CallingNumber, Campaign, CampaignType
    from campaigns.actions.tenancy import do_create_api_key, do_upsert_organisation, do_upsert_workspace

    organisation = do_upsert_organisation(label, slots)
    workspace = do_upsert_workspace(organisation, label, slots)
    agent = Agent.objects.create(workspace=workspace, name=f"{label} agent", prompt="Hello ${name}")
    calling_number = CallingNumber.objects.create(workspace=workspace, number=number, carrier="twilio",
                                                  calls_per_second=calls_per_second)
    campaign = Campaign.objects.create(
        workspace=workspace, type=CampaignType.REALTIME if realtime else CampaignType.BATCH, name=label,
        agent=agent, calling_number=calling_number, start_at=timezone.now(), calling_start=dt.time(0, 0),
        calling_end=dt.time(0, 0), max_retries=0, retry_interval_ms=0, slots=slots)
    _, raw_key = do_create_api_key(workspace, "bench")
    return organisation, campaign, raw_key


def seed_tasks(organisation, campaign, count, prefix):
    from django.db import transaction
    from django.utils import timezone

    from campaigns.models import Task
    from campaigns.signals import tasks_changed
    from campaigns.actions.task_store import insert_tasks

    now = timezone.now()
    with transaction.atomic():
        insert_tasks([Task(campaign=campaign, phone=f"{prefix}{n:06d}", context={"name": f"Lead {n}"},
                           next_attempt_at=now) for n in range(count)])
        transaction.on_commit(lambda: tasks_changed.send(sender=Task, organisation_id=organisation.id))


def wait_for_tasks(campaign, timeout):
    from campaigns.models import Task, TaskStatus

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Task.objects.filter(campaign=campaign, status__in=[TaskStatus.QUEUED, TaskStatus.IN_PROGRESS]).exists():
            return True
        time.sleep(0.25)
    return False


def admission_times(campaign):
    from telephony.models import Call

    return {str(call_id): created_at.timestamp() for call_id, created_at in
            Call.objects.filter(campaign=campaign).values_list("id", "created_at")}


def stored_events(campaign):
    """{kind: {call id: when our webhook stored that event}} for each call's `completed` and analysis."""
    from telephony.models import CallEvent

    stored = {"completed": {}, "analysis": {}}
    for call_id, kind, received_at in (CallEvent.objects.filter(call__campaign=campaign, kind__in=list(stored))
                                       .values_list("call_id", "kind", "received_at")):
        stored[kind][str(call_id)] = received_at.timestamp()
    return stored


def callback_lags(stored, taken):
    """ms from each call's end at the stand-in to our storing its `completed` and analysis events."""
    lags = {kind: [(at[r["call_id"]] - r["ends"]) * 1000 for r in taken if r["call_id"] in at]
            for kind, at in stored.items()}
    return {kind: (statistics.median(v), percentile(v, 0.99)) if v else (float("nan"),) * 2
            for kind, v in lags.items()}


def slot_gaps(taken, admitted, completed, slots, end):
    """Where a slot's idle time goes, in mean ms: from a call's end at the stand-in to our storing
    its `completed`, from there to the next admission, from that admission to its create request.
    Calls are paired by order: the k-th call to end frees the slot the (k + slots)-th create
    request takes (every slot busy from the start, work waiting throughout); pairs whose next
    request comes after `end` (the last one) are left out."""
    ends = sorted((r["ends"], completed.get(r["call_id"])) for r in taken)
    starts = sorted((r["arrived"], admitted.get(r["call_id"])) for r in taken)
    parts = {"stored": [], "admitted": [], "requested": [], "gap": []}
    for (ended, stored), (arrived, admission) in zip(ends, starts[slots:]):
        if arrived > end or stored is None or admission is None:
            continue
        parts["stored"].append(stored - ended)
        parts["admitted"].append(admission - stored)
        parts["requested"].append(arrived - admission)
        parts["gap"].append(arrived - ended)
    return {part: statistics.mean(values) * 1000 if values else float("nan") for part, values in parts.items()}


def held_share(records, slots, start, end):
    """Share of slot-time in [start, end] during which the stand-in held a call."""
    if end <= start:
        return 0.0
    held = sum(max(0.0, min(r["ends"], end) - max(r["arrived"], start)) for r in records)
    return 100.0 * held / (slots * (end - start))


def run_utilisation(standin, name, shape, seconds, index):
    slots = shape["slots"]
    cycle = shape["latency"] + shape["ring"] + shape["talk"]
    tasks = shape.get("tasks") or math.ceil(slots * seconds / cycle) + slots
    number = f"+1415550{index:02d}00"
    standin.create_latency, standin.ring, standin.talk, standin.rate_limit = (
        shape["latency"], shape["ring"], shape["talk"], None)
    organisation, campaign, key = make_tenant(f"bench {name}", slots, number, 1000)
    standin.agent_keys[number] = key
    seed_tasks(organisation, campaign, tasks, f"+4420{index:02d}")
    finished = wait_for_tasks(campaign, timeout=seconds * 6 + 60)
    records = [r for r in standin.records if r["from"] == number]
    taken = [r for r in records if r["status"] == 201]
    if not taken:
        return {"name": name, "error": "no call reached the stand-in"}
    start, end = min(r["arrived"] for r in taken), max(r["arrived"] for r in taken)
    admitted = admission_times(campaign)
    stored = stored_events(campaign)
    delays = [(r["arrived"] - admitted[r["call_id"]]) * 1000 for r in taken if r["call_id"] in admitted]
    per_second = {}
    for r in taken:
        per_second[int(r["arrived"] - start)] = per_second.get(int(r["arrived"] - start), 0) + 1
    return {"name": name, "slots": slots, "latency_ms": shape["latency"] * 1000, "calls": len(taken),
            "tasks": tasks, "finished": finished, "refused": len(records) - len(taken),
            "window_s": end - start, "utilisation": held_share(taken, slots, start, end),
            "p50": statistics.median(delays), "p99": percentile(delays, 0.99),
            "rate": (len(taken) - 1) / (end - start) if end > start else float("nan"),
            "peak": max(per_second.values()), "lags": callback_lags(stored, taken),
            "gaps": slot_gaps(taken, admitted, stored["completed"], slots, end)}


def run_flood(standin, base_url, index, other_tasks=5, gap=1.5):
    from campaigns.actions.controls import do_archive_campaign

    standin.create_latency, standin.ring, standin.talk, standin.rate_limit = 0.3, 0.3, 1.5, 1
    number_a, number_b = f"+1415550{index:02d}00", f"+1415550{index:02d}50"
    organisation_a, campaign_a, key_a = make_tenant("bench flood A", 100, number_a, 1)
    _, campaign_b, key_b = make_tenant("bench flood B", 10, number_b, 10, realtime=True)
    standin.agent_keys.update({number_a: key_a, number_b: key_b})
    seed_tasks(organisation_a, campaign_a, 100, f"+4420{index:02d}")
    time.sleep(3)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key_b}"
    waits, posted = [], []
    for n in range(other_tasks):
        phone = f"+4420{index + 1:02d}{n:06d}"
        posted.append((phone, time.time()))
        session.post(f"{base_url}/api/v1/tasks", json={"phone": phone, "campaign": str(campaign_b.id)},
                     timeout=10).raise_for_status()
        time.sleep(gap)
    time.sleep(2)
    for phone, at in posted:
        arrivals = [r["arrived"] for r in standin.records if r["to"] == phone]
        waits.append(min(arrivals) - at if arrivals else float("inf"))
    a_records = [r for r in standin.records if r["from"] == number_a]
    a_taken = [r for r in a_records if r["status"] == 201]
    span = max(r["arrived"] for r in a_taken) - min(r["arrived"] for r in a_taken) if len(a_taken) > 1 else 0
    do_archive_campaign(campaign_a)
    return {"name": "flood", "waits": waits, "a_calls": len(a_taken), "a_refused": len(a_records) - len(a_taken),
            "a_rate": (len(a_taken) - 1) / span if span else float("nan")}


def settle(standin, timeout=180):
    """Wait until the stand-in has sent everything and no call is live: scenarios must not overlap."""
    from telephony.models import LIVE_CALL_STATUSES, Call

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not standin.pending_callbacks() and not Call.objects.filter(status__in=LIVE_CALL_STATUSES).exists():
            return
        time.sleep(0.5)
    print(f"  (still busy after {timeout} s: the next scenario overlaps this one's tail)", flush=True)


def report(results, args, load_before, load_after):
    print(f"\ncarrier path, Twilio provider against the stand-in; dialer pool {args.dialer_pool} × "
          f"{args.dialer_concurrency}, {args.web_workers} gunicorn workers × {args.web_threads} threads; load {' '.join(load_before)} → "
          f"{' '.join(load_after)}")
    for r in results:
        if "error" in r:
            print(f"  {r['name']}: {r['error']}")
            continue
        if r["name"] == "flood":
            worst = max(r["waits"])
            print(f"  flood: organisation A placed {r['a_calls']} calls at {r['a_rate']:.2f}/s from its 1 call/s "
                  f"number ({r['a_refused']} answered 429 by the stand-in)")
            print(f"    organisation B's call after its task: median {statistics.median(r['waits']):.3f} s, "
                  f"worst {worst:.3f} s of {len(r['waits'])}   (target < {TARGET_OTHER_TENANT_S:.0f} s: "
                  f"{verdict(worst < TARGET_OTHER_TENANT_S)})")
            continue
        limit = r["latency_ms"] + TARGET_EXTRA_P99_MS
        notes = "" if r["finished"] else " (NOT all tasks finished)"
        if r["refused"]:
            notes += f", {r['refused']} create requests refused"
        print(f"  {r['name']}: {r['slots']} slots, create {r['latency_ms']:.0f} ms, {r['calls']} calls over "
              f"{r['window_s']:.1f} s{notes}")
        if r["name"] != "burst":
            print(f"    utilisation while work waits {r['utilisation']:5.1f} %   (target ≥ {TARGET_UTILISATION:.0f} %: "
                  f"{verdict(r['utilisation'] >= TARGET_UTILISATION)})")
        print(f"    admission → carrier request p50 {r['p50']:.0f} ms, p99 {r['p99']:.0f} ms   "
              f"(target p99 ≤ {limit:.0f} ms: {verdict(r['p99'] <= limit)})")
        rate_line = f"    placements/s {r['rate']:.0f} mean, {r['peak']} in the busiest second"
        if r["name"] == "burst":
            rate_line += f"   (target ≥ {TARGET_PLACEMENTS}/s at 300 ms: {verdict(r['rate'] >= TARGET_PLACEMENTS)})"
        print(rate_line)
        calls = max(1, r["calls"])
        print("    CPU ms per call: " + ", ".join(f"{key} {seconds * 1000 / calls:.1f}" for key, seconds in r["cpu"].items()))
        lags = r["lags"]
        print(f"    call's end → our webhook stored its completed / analysis: p50 {lags['completed'][0]:.0f} / "
              f"{lags['analysis'][0]:.0f} ms, p99 {lags['completed'][1]:.0f} / {lags['analysis'][1]:.0f} ms")
        if r["name"] != "burst":
            gaps = r["gaps"]
            print(f"    a slot's gap between calls, mean {gaps['gap']:.0f} ms: end → completed stored {gaps['stored']:.0f}, "
                  f"→ next admission {gaps['admitted']:.0f}, → its create request {gaps['requested']:.0f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="lat0,lat300,lat1000,big300,big1000,burst,flood")
    parser.add_argument("--seconds", type=float, default=15, help="work per utilisation scenario, in call time")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--web-threads", type=int, default=4)
    parser.add_argument("--dialer-pool", default="threads")
    parser.add_argument("--dialer-concurrency", type=int, default=32)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/6")
    args = parser.parse_args()
    names = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS and name != "flood"]
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}")

    database = use_throwaway_database("dialer_bench_carrier")
    web_port = free_port()
    base_url = f"http://127.0.0.1:{web_port}"
    env = {"DJANGO_SETTINGS_MODULE": "config.settings", "REDIS_URL": args.redis_url,
           # Production settings, served over plain HTTP on loopback: no redirect to HTTPS.
           "CELERY_BROKER_URL": args.redis_url, "DEBUG": "false", "SECURE_HTTPS": "false", "SECRET_KEY": "bench-only",
           "ALLOWED_HOSTS": "127.0.0.1", "LOG_LEVEL": "WARNING", "API_THROTTLE_RATE": "1000000/min",
           "TELEPHONY_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
           "PUBLIC_BASE_URL": base_url, "WEB_BIND": f"127.0.0.1:{web_port}",
           "WEB_WORKERS": str(args.web_workers), "WEB_THREADS": str(args.web_threads), "DIALER_POOL": args.dialer_pool,
           "DIALER_CONCURRENCY": str(args.dialer_concurrency)}
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    database.recreate()

    import django
    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from config.redis_client import get_redis
    from twilio_standin import TwilioStandIn

    call_command("migrate", verbosity=0)
    connections.close_all()
    get_redis().flushdb()
    standin = TwilioStandIn(ACCOUNT_SID, AUTH_TOKEN, analysis_url=f"{base_url}/webhooks/agent/analysis/").start()
    os.environ["TWILIO_API_BASE_URL"] = standin.base_url
    system_env = {**os.environ, "PATH": f"{ROOT / '.venv/bin'}:{os.environ.get('PATH', '')}"}
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    results = []
    load_before = uptime()
    try:
        with ProcfileProcesses(system_env, ROOT / "test-artifacts" / "carrier-bench.log",
                               ["web", "dialer", "worker", "beat"]) as system:
            wait_until_up(base_url)
            for index, name in enumerate(names, start=10):
                print(f"running {name} …", flush=True)
                before = cpu_seconds(system.process.pid)
                if name == "flood":
                    result = run_flood(standin, base_url, index)
                else:
                    result = run_utilisation(standin, name, SCENARIOS[name], args.seconds, index)
                after = cpu_seconds(system.process.pid)
                result["cpu"] = {key: after[key] - before.get(key, 0.0) for key in after}
                results.append(result)
                settle(standin)
    finally:
        standin.stop()
        connections.close_all()
        get_redis().flushdb()
        database.drop()
    report(results, args, load_before, uptime())
    if standin.callback_timings:
        late, took = zip(*standin.callback_timings)
        print(f"  stand-in callbacks: {len(late)} sent, started late p50 {statistics.median(late):.0f} ms "
              f"p99 {percentile(late, 0.99):.0f} ms; answered in p50 {statistics.median(took):.0f} ms "
              f"p99 {percentile(took, 0.99):.0f} ms")
    if standin.callback_failures:
        print(f"  ({standin.callback_failures} callbacks or analyses were not accepted: see the log)")


if __name__ == "__main__":
    main()
