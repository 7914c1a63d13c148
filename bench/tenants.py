"""Idle tenants: what a thousand (or ten thousand) organisations with nothing due cost, and how
fast a new realtime task is placed among them.

Usage (PostgreSQL and Redis running, as for the tests), from the repository root:

    .venv/bin/python bench/tenants.py [--sizes 0,1000,10000] [--idle-seconds 30] [--probes 20]
        [--redis-url redis://127.0.0.1:6379/4] [--port 8093]

It creates a throwaway database `dialer_bench_tenants` on the server of DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/dialer), migrates it, and drops it at the end, even on
failure. Redis: only the given db (default 4), flushed at the start of each size and at the end.

For each N in --sizes (cumulative: the organisations of a smaller N stay for the larger one):
1. Seeding (ORM, untimed): N organisations, each with one workspace, agent and calling number and
   one running realtime campaign whose only task is due an hour later — a hosted deployment's
   everyday shape; plus one probe organisation with an API key and an empty realtime campaign.
2. The Procfile's processes (web, workers, beat, simulator) are started with honcho, as
   `make run` starts them, against the bench database and Redis db; the bench waits until the
   API answers and beat has ticked for 15 s (the first tick rebuilds the wake-up schedule).
3. Idle CPU over --idle-seconds: CPU seconds used by every process honcho started, the
   PostgreSQL backends of the bench database and the Redis server, divided by wall seconds
   (cores); the machine's own busy share (/proc/stat) is printed beside it, as it includes
   whatever else runs on the machine.
4. New-call latency: --probes times, `POST /api/v1/tasks` for the probe organisation (one
   task, a scripted short call) and the time until its call is placed (`placed_at` of its Call
   row, polled every 5 ms); p50 and p99.
Figures are printed beside docs/product.md §4's targets, never asserted.
"""
import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from live_system import ProcfileProcesses, cpu_seconds_of  # noqa: E402 (bench/ is on sys.path)
from throwaway_database import use_throwaway_database  # noqa: E402

BENCH_DATABASE = use_throwaway_database("dialer_bench_tenants")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

TARGET_CPU_RATIO = 1.5
TARGET_CPU_EXTRA_CORES = 0.1
TARGET_P50_MS, TARGET_P99_MS = 100, 500


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))] if ordered else float("nan")


def seed_organisations(first, count):
    """`count` idle organisations (numbered from `first`), in bulk."""
    from django.utils import timezone

    from campaigns.models import Agent, CallingNumber, Campaign, CampaignStatus, CampaignType, Organisation, Task, Workspace

    now = timezone.now()
    for start in range(first, first + count, 1000):
        names = [f"idle {n}" for n in range(start, min(first + count, start + 1000))]
        organisations = Organisation.objects.bulk_create([Organisation(name=name, total_slots=5) for name in names])
        workspaces = Workspace.objects.bulk_create([Workspace(organisation=o, name="main", slots=5) for o in organisations])
        agents = Agent.objects.bulk_create([Agent(workspace=w, name="agent", prompt="Hello") for w in workspaces])
        numbers = CallingNumber.objects.bulk_create([
            CallingNumber(workspace=w, number=f"+1415{n:07d}") for n, w in zip(range(start, start + len(names)), workspaces)])
        campaigns = Campaign.objects.bulk_create([
            Campaign(workspace=w, type=CampaignType.REALTIME, name="follow-ups", agent=a, calling_number=c,
                     start_at=now - dt.timedelta(days=1), calling_start=dt.time(0), calling_end=dt.time(0), slots=5,
                     status=CampaignStatus.RUNNING)
            for w, a, c in zip(workspaces, agents, numbers)])
        Task.objects.bulk_create([
            Task(campaign=c, phone=f"+4420{n:08d}", next_attempt_at=now + dt.timedelta(hours=1))
            for n, c in zip(range(start, start + len(names)), campaigns)])


def seed_probe():
    from campaigns.actions.campaigns import do_create_campaign
    from campaigns.models import Agent, CallingNumber, CampaignType
    from campaigns.actions.tenancy import do_create_api_key, do_upsert_organisation, do_upsert_workspace
    from django.utils import timezone

    organisation = do_upsert_organisation("probe", 10)
    workspace = do_upsert_workspace(organisation, "probe", 10)
    agent = Agent.objects.create(workspace=workspace, name="probe agent", prompt="Hello")
    number = CallingNumber.objects.create(workspace=workspace, number="+14150000001")
    campaign = do_create_campaign(workspace, {
        "type": CampaignType.REALTIME, "name": "probe", "agent": agent, "calling_number": number,
        "start_at": timezone.now() - dt.timedelta(minutes=1), "calling_start": dt.time(0), "calling_end": dt.time(0),
        "slots": 10})
    _, raw_key = do_create_api_key(workspace, "bench")
    return campaign.id, raw_key


def machine_busy():
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def database_backends():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                       [BENCH_DATABASE.name])
        return [pid for (pid,) in cursor.fetchall()]


def redis_server_pids():
    return [int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and _command(entry).startswith("redis-server")]


def _command(entry):
    try:
        return (entry / "cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace").rsplit("/", 1)[-1]
    except OSError:
        return ""


def measure_idle(processes, seconds):
    def watched():
        return [*processes.pids(), *database_backends(), *redis_server_pids()]

    pids = watched()
    before, machine_before, started = cpu_seconds_of(pids), machine_busy(), time.monotonic()
    time.sleep(seconds)
    pids = watched()  # backends opened meanwhile count from their start: a slight overcount at worst
    used = cpu_seconds_of(pids) - before
    busy, total = (after - earlier for after, earlier in zip(machine_busy(), machine_before))
    wall = time.monotonic() - started
    return used / wall, os.cpu_count() * busy / total


def wait_for_api(base_url, key, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(f"{base_url}/api/v1/campaigns", headers={"Authorization": f"Bearer {key}"})
            with urllib.request.urlopen(request, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("the web process did not answer; see test-artifacts/bench-tenants.log")


def probe(base_url, key, campaign_id, phone):
    """Seconds from sending POST /api/v1/tasks until the task's call is placed."""
    from django.db import connection

    body = json.dumps({"phone": phone, "campaign": str(campaign_id),
                       "context": {"_sim": [{"outcome": "no-answer", "ring_ms": 50}]}}).encode()
    request = urllib.request.Request(f"{base_url}/api/v1/tasks", data=body, method="POST", headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    sent = time.time()
    with urllib.request.urlopen(request, timeout=10) as response:
        task_id = json.loads(response.read())["id"]
    deadline = time.monotonic() + 60
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT extract(epoch FROM placed_at) FROM telephony_call WHERE task_id = %s "
                           "AND placed_at IS NOT NULL", [int(task_id)])
            row = cursor.fetchone()
            if row:
                return float(row[0]) - sent
            time.sleep(0.005)
    return float("inf")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="0,1000,10000")
    parser.add_argument("--idle-seconds", type=float, default=30)
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/4")
    parser.add_argument("--port", type=int, default=8093)
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))

    BENCH_DATABASE.recreate()
    os.environ["REDIS_URL"] = os.environ["CELERY_BROKER_URL"] = args.redis_url
    import django

    django.setup()
    from django.core.management import call_command

    from config.redis_client import get_redis

    results = []
    log_path = ROOT / "test-artifacts" / "bench-tenants.log"
    log_path.parent.mkdir(exist_ok=True)
    try:
        call_command("migrate", verbosity=0)
        campaign_id, key = seed_probe()
        env = dict(os.environ, DEBUG="true", WEB_BIND=f"127.0.0.1:{args.port}", PORT=str(args.port),
                   PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
        base_url = f"http://127.0.0.1:{args.port}"
        seeded = 0
        for round_number, size in enumerate(sizes, start=1):
            started = time.monotonic()
            seed_organisations(seeded, size - seeded)
            seeded = size
            print(f"seeded {size:,} idle organisations ({time.monotonic() - started:.1f} s)", flush=True)
            get_redis().flushdb()
            with ProcfileProcesses(env, log_path) as processes:
                wait_for_api(base_url, key)
                time.sleep(15)
                cores, machine = measure_idle(processes, args.idle_seconds)
                latencies = [probe(base_url, key, campaign_id, f"+1415555{round_number}{n:03d}")
                             for n in range(args.probes)]
            results.append((size, cores, machine, latencies))
            print(f"N={size:,}: idle {cores:.3f} cores (machine {machine:.2f}), new call p50 "
                  f"{statistics.median(latencies) * 1000:.0f} ms p99 {percentile(latencies, 0.99) * 1000:.0f} ms",
                  flush=True)
    finally:
        get_redis().flushdb()
        from django.db import connections

        connections.close_all()
        BENCH_DATABASE.drop()
    report(results)


def report(results):
    baseline = results[0][1] if results and results[0][0] == 0 else None
    print()
    print("| idle organisations | idle CPU (cores) | machine busy (cores) | new call p50 | p99 | target |")
    print("|---|---|---|---|---|---|")
    for size, cores, machine, latencies in results:
        p50, p99 = statistics.median(latencies) * 1000, percentile(latencies, 0.99) * 1000
        target = "—"
        if baseline is not None and size:
            cpu_ok = cores <= max(baseline * TARGET_CPU_RATIO, baseline + TARGET_CPU_EXTRA_CORES)
            latency_ok = p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS
            target = (f"CPU ≤ 1.5× none or +0.1 core: {'met' if cpu_ok else 'NOT met'}; "
                      f"p50 ≤ {TARGET_P50_MS} / p99 ≤ {TARGET_P99_MS} ms: {'met' if latency_ok else 'NOT met'}")
        print(f"| {size:,} | {cores:.3f} | {machine:.2f} | {p50:.0f} ms | {p99:.0f} ms | {target} |")


if __name__ == "__main__":
    main()
