"""Dispatcher speed: admitted calls/s, run cost against the backlog, refill latency, utilisation.

Usage (PostgreSQL and Redis running, as for the tests), from the repository root:

    .venv/bin/python bench/dispatch.py [--redis-url redis://127.0.0.1:6379/7] [--sizes 10000,1000000]
        [--cycles 10] [--refill-samples 300] [--util-seconds 30] [--util-ring-ms 1000] [--time-scale 1.0]
        [--skip-worker] [--skip-utilisation]

It creates a throwaway database `dialer_bench_dispatch` on the server of DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/dialer), migrates it, and drops it at the end, even on
failure. Redis: only the given db (default 7); the keys it wrote (the organisations' slot and
dispatch keys, the Celery queues, the simulator's keys) are deleted at the end. Never FLUSHALL.

Set-up: one organisation (total 5,000 slots, one hard workspace of 5,000) with 1,000 running batch
campaigns (5 hard slots each, calling hours all day, 20 retries, interval 0) and N + 5,000
queued tasks (`INSERT ... SELECT generate_series`: distinct E.164 numbers, next_attempt_at in the
past, random tie_break), so N stay queued behind the 5,000 live calls. Allocations are written to
Redis with `dialer.slots.sync_allocations`. For each N in --sizes:
1. Cold fill: one `dispatch_organisation` from empty slots (admits 5,000).
2. Refill cycles: end 500 random live calls (bench-side SQL, their tasks re-queued as retries,
   leases released in one pipeline; untimed), then time `dispatch_organisation`, which claims,
   re-checks, admits through the Lua, records the Call rows and task updates, commits and
   publishes the dial jobs with Celery `apply_async` to Redis (nothing consumes them; the queues
   are emptied between cycles). Sustained calls/s = admitted / time of these runs (also per CPU
   second of this process, a figure less swayed by a loaded machine); run cost = the median time
   of a run admitting 500, at 10,000 against 1,000,000 queued.
3. Refill latency at the largest N, all slots full: a call ends as the telephony handler ends it
   (call row ended and `dialer.attempts.do_finish_attempt` in one transaction; on commit the
   lease is released and the dispatcher nudged), until its replacement's dial job is published.
   (a) in-process: the nudge's job is run here, `dispatch_organisation` right after the commit;
   (b) real path: a Celery worker consuming `events` runs the nudged job; the bench BLPOPs the
   dial queues to see the job land. p50/p99 over --refill-samples.
4. Utilisation: a second organisation (50 slots, 5 hard campaigns of 10) with 20,000 tasks whose
   simulated calls ring ~1 s and go unanswered; one Celery worker with beat (all queues, prefork,
   concurrency 2) and the simulator process, as in bench/live_system.py. Live calls (PostgreSQL)
   against available slots are sampled every 100 ms while work waits. A slot stays empty for
   about one refill latency per call, so utilisation ≈ 1 − refill / call length: 1 s calls are
   a harsh case (real calls last tens of seconds).
Figures are printed beside docs/product.md §4's targets, never asserted.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from throwaway_database import use_throwaway_database  # noqa: E402 (bench/ is on sys.path)

BENCH_DATABASE = use_throwaway_database("dialer_bench_dispatch")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

CAMPAIGNS = 1_000
CAMPAIGN_SLOTS = 5
TOTAL_SLOTS = CAMPAIGNS * CAMPAIGN_SLOTS
REFILL = 500
DIAL_QUEUES = ["dial.callback", "dial.high", "dial.normal", "dial.low"]

TARGET_CALLS_PER_SECOND = 2_000
TARGET_RUN_COST_RATIO = 1.5
TARGET_P50_MS, TARGET_P99_MS = 50, 250
TARGET_UTILISATION = 0.95
# docs/product.md §4 floors per admitted call, serially: claim (200 rows in ~5 ms), pipelined Lua
# (~40K/s), execute_values (~50K rows/s), UPDATE ... = ANY (~73K rows/s), apply_async
# (~1,600 messages/s, one per DIAL_JOB_SIZE calls).
FLOOR_SECONDS_PER_CALL = {"claim": 5e-3 / 200, "lua": 1 / 40_000, "insert": 1 / 50_000, "update": 1 / 73_000}


def median(values):
    return statistics.median(values) if values else float("nan")


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))] if ordered else float("nan")


def verdict(ok):
    return "met" if ok else "MISSED"


# --- set-up -------------------------------------------------------------------------------------

def create_organisation(name, total, campaigns, campaign_slots, **campaign_fields):
    import datetime as dt

    from django.utils import timezone

    from campaigns.models import Agent, CallingNumber, Campaign, Organisation, Workspace

    organisation = Organisation.objects.create(name=name, total_slots=total)
    workspace = Workspace.objects.create(organisation=organisation, name=name, slots=total, slot_mode="hard")
    agent = Agent.objects.create(workspace=workspace, name=name, prompt="Hello.")
    number = CallingNumber.objects.create(workspace=workspace, number="+14155550100", calls_per_second=10_000)
    midnight = dt.time(0, 0)
    Campaign.objects.bulk_create([
        Campaign(workspace=workspace, type="batch", name=f"{name} {i}", agent=agent, calling_number=number,
                 priority="normal", timezone="UTC", start_at=timezone.now() - dt.timedelta(days=1),
                 calling_start=midnight, calling_end=midnight, slots=campaign_slots, slot_mode="hard",
                 status="running", **campaign_fields)
        for i in range(campaigns)
    ])
    return organisation


def seed_tasks(organisation_id, first, count, context="{}"):
    """Insert `count` queued tasks numbered from `first`, round robin over the organisation's campaigns."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("""
            INSERT INTO campaigns_task (campaign_id, phone, context, submitted_config, timezone, status,
                attempts_made, next_attempt_at, dispatch_rank, tie_break, last_outcome, final_outcome,
                completion_reason, created_at, updated_at)
            SELECT c.ids[1 + n %% array_length(c.ids, 1)], '+4420' || lpad(n::text, 8, '0'), %s::jsonb, '{}',
                   '', 'queued', 0, now() - interval '1 hour' + (n %% 3600) * interval '1 second', 0,
                   floor(random() * 2147483647)::int, '', '', '', now(), now()
            FROM generate_series(%s, %s) AS n,
                 (SELECT array_agg(cc.id ORDER BY cc.id) AS ids FROM campaigns_campaign cc
                  JOIN campaigns_workspace w ON w.id = cc.workspace_id WHERE w.organisation_id = %s) AS c
        """, [context, first, first + count - 1, organisation_id])
    # A table in steady state, not one whose every page autovacuum is about to visit mid-measurement.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE campaigns_task")
        cursor.execute("VACUUM ANALYZE telephony_call")


def queued_count(organisation_id):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM campaigns_task t JOIN campaigns_campaign c ON c.id = t.campaign_id "
                       "JOIN campaigns_workspace w ON w.id = c.workspace_id "
                       "WHERE w.organisation_id = %s AND t.status = 'queued'", [organisation_id])
        return cursor.fetchone()[0]


def drain_dial_queues():
    from config.redis_client import get_redis

    get_redis().delete(*DIAL_QUEUES)


def end_random_calls(organisation_id, count):
    """End `count` random live calls bench-side (no dispatcher nudge), re-queue their tasks, free the leases."""
    from django.db import connection

    from dialer import slots

    with connection.cursor() as cursor:
        cursor.execute("""
            WITH ended AS (
                UPDATE telephony_call SET status = 'ended', outcome = 'no-answer', ended_at = now()
                WHERE id IN (SELECT id FROM telephony_call WHERE organisation_id = %s AND status = 'admitted'
                             ORDER BY random() LIMIT %s)
                RETURNING id, task_id, lease_token)
            , requeued AS (
                UPDATE campaigns_task t SET status = 'queued', dispatch_rank = t.attempts_made,
                    next_attempt_at = now() - interval '1 second', last_outcome = 'no-answer'
                FROM ended WHERE t.id = ended.task_id)
            SELECT id, lease_token FROM ended
        """, [organisation_id, count])
        leases = cursor.fetchall()
    slots.release_many(organisation_id, leases)
    return len(leases)


# --- 1 and 2: calls/s and run cost --------------------------------------------------------------

def timed_run(organisation_id):
    """One `dispatch_organisation` run: (admitted, wall seconds, this process's CPU seconds)."""
    from dialer.dispatcher import dispatch_organisation

    wall, cpu = time.perf_counter(), time.process_time()
    admitted = dispatch_organisation(organisation_id)
    return admitted, time.perf_counter() - wall, time.process_time() - cpu


def measure_throughput(organisation_id, cycles):
    drain_dial_queues()
    cold_admitted, cold_seconds, cold_cpu = timed_run(organisation_id)
    drain_dial_queues()
    runs = []
    for _ in range(cycles):
        end_random_calls(organisation_id, REFILL)
        runs.append(timed_run(organisation_id))
        drain_dial_queues()
    admitted_total = sum(a for a, _, _ in runs)
    return {
        "cold_admitted": cold_admitted, "cold_seconds": cold_seconds, "cold_cpu": cold_cpu,
        "sustained": admitted_total / sum(s for _, s, _ in runs),
        "sustained_cpu": admitted_total / sum(c for _, _, c in runs),
        "run_ms": median([s * 1000 for _, s, _ in runs]),
        "run_cpu_ms": median([c * 1000 for _, _, c in runs]),
        "admitted_per_run": median([a for a, _, _ in runs]),
    }


# --- 3: refill latency --------------------------------------------------------------------------

def finish_one_call(organisation_id, rng):
    """End one live call as the telephony handler does: call row and attempt in one transaction."""
    from django.db import connection, transaction
    from django.utils import timezone

    from dialer.attempts import do_finish_attempt

    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM telephony_call WHERE organisation_id = %s AND status = 'admitted' "
                       "OFFSET %s LIMIT 1", [organisation_id, rng.randrange(TOTAL_SLOTS // 2)])
        call_id = cursor.fetchone()[0]
    started = time.perf_counter()
    now = timezone.now()
    with transaction.atomic():
        from telephony.models import Call

        Call.objects.filter(id=call_id).update(status="ended", outcome="no-answer", ended_at=now)
        do_finish_attempt(call_id, "no-answer", now)
    return started


def measure_refill_in_process(organisation_id, samples):
    import random

    from config import jobs
    from config.redis_client import get_redis
    from dialer.dispatcher import dispatch_organisation

    published = []
    original = jobs.enqueue

    def recording(*args, **kwargs):
        result = original(*args, **kwargs)
        published.append(time.perf_counter())
        return result

    rng = random.Random(6)
    latencies = []
    jobs.enqueue = recording
    try:
        for _ in range(samples):
            published.clear()
            started = finish_one_call(organisation_id, rng)
            dispatch_organisation(organisation_id)  # what the nudged `events` job runs
            if published:
                latencies.append((published[0] - started) * 1000)
            get_redis().delete("events")
            drain_dial_queues()
    finally:
        jobs.enqueue = original
    return latencies


def measure_refill_with_worker(organisation_id, samples):
    import random

    from django.db import connections

    from config.redis_client import get_redis
    from bench.live_system import LiveSystem

    client = get_redis()
    rng = random.Random(7)
    latencies, lost = [], 0
    drain_dial_queues()
    client.delete("events")
    connections.close_all()
    # A worker on `events` only (no beat: every run is a nudged one); the dial jobs stay for the bench.
    with LiveSystem(workers=0, beat=False, simulator=False, LOG_LEVEL="WARNING") as system:
        system._spawn("bench-events-worker", [
            sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "events", "-c", "1", "-P", "prefork",
            "-l", "warning", "-n", f"bench-events-{os.getpid()}@%h", "--without-mingle", "--without-gossip"])
        time.sleep(5)  # worker start-up
        for _ in range(samples):
            started = finish_one_call(organisation_id, rng)
            popped = client.blpop(DIAL_QUEUES, timeout=5)
            if popped is None:
                lost += 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(rng.uniform(0, 0.05))
            drain_dial_queues()
    return latencies, lost


# --- 4: utilisation -----------------------------------------------------------------------------

def retire_organisation(organisation_id):
    """End the throughput organisation's calls and archive its campaigns, so that beat's tick and
    the maintenance job (which re-dials admitted calls never placed) leave it alone."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("UPDATE telephony_call SET status = 'ended', outcome = 'no-answer', ended_at = now() "
                       "WHERE organisation_id = %s AND status = 'admitted'", [organisation_id])
        cursor.execute("UPDATE campaigns_campaign SET status = 'archived' WHERE workspace_id IN "
                       "(SELECT id FROM campaigns_workspace WHERE organisation_id = %s)", [organisation_id])
    cleanup_redis([organisation_id])


def measure_utilisation(seconds, time_scale, ring_ms):
    import json

    from django.db import connection, connections

    from bench.live_system import LiveSystem

    slots_total, campaigns = 50, 5
    organisation = create_organisation("Utilisation", slots_total, campaigns, slots_total // campaigns)
    cleanup_redis([organisation.id])
    context = json.dumps({"_sim": [{"outcome": "no-answer", "ring_ms": ring_ms}]})
    seed_tasks(organisation.id, 50_000_000, 20_000, context)
    live_sql = ("SELECT count(*) FROM telephony_call WHERE organisation_id = %s "
                "AND status IN ('admitted', 'dialing', 'ringing', 'answered')")
    samples = []
    ended_sql = "SELECT count(*) FROM telephony_call WHERE organisation_id = %s AND status = 'ended'"
    connections.close_all()
    with LiveSystem(workers=1, concurrency=2, beat=True, simulator=True, time_scale=time_scale, LOG_LEVEL="WARNING"):
        from dialer.dispatch_lock import nudge_dispatcher

        nudge_dispatcher(organisation.id)
        time.sleep(5)  # start-up and first fill
        with connection.cursor() as cursor:
            cursor.execute(ended_sql, [organisation.id])
            ended_before = cursor.fetchone()[0]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with connection.cursor() as cursor:
                cursor.execute(live_sql, [organisation.id])
                live = cursor.fetchone()[0]
            samples.append(live / slots_total)
            time.sleep(0.1)
        waiting = queued_count(organisation.id)
        with connection.cursor() as cursor:
            cursor.execute(ended_sql, [organisation.id])
            ended = cursor.fetchone()[0] - ended_before
    # Full slots prove nothing if calls do not end: say how many did.
    return samples, waiting, ended / seconds, organisation.id


# --- main ---------------------------------------------------------------------------------------

def cleanup_redis(organisation_ids):
    from config.redis_client import get_redis

    client = get_redis()
    doomed = list(DIAL_QUEUES) + ["events", "unacked", "unacked_index"]
    patterns = [f"{prefix}[{{]org:{o}[}}]*" for o in organisation_ids for prefix in ("", "dialer:slots:")]
    for pattern in [*patterns, "sim:*", "_kombu*", "stale-check:*"]:
        doomed += list(client.scan_iter(match=pattern, count=1000))
    for start in range(0, len(doomed), 500):
        client.delete(*doomed[start:start + 500])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7")
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--refill-samples", type=int, default=300)
    parser.add_argument("--util-seconds", type=float, default=30)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--util-ring-ms", type=int, default=1000, help="simulated call length (unanswered)")
    parser.add_argument("--skip-worker", action="store_true")
    parser.add_argument("--skip-utilisation", action="store_true")
    options = parser.parse_args()
    os.environ["REDIS_URL"] = os.environ["CELERY_BROKER_URL"] = options.redis_url
    sizes = [int(size) for size in options.sizes.split(",")]

    import django

    BENCH_DATABASE.recreate()
    organisation_ids = []
    try:
        django.setup()
        from django.core.management import call_command

        from dialer import slots

        call_command("migrate", verbosity=0)
        print(f"load before: {os.getloadavg()}")
        organisation = create_organisation("Dispatch", TOTAL_SLOTS, CAMPAIGNS, CAMPAIGN_SLOTS, max_retries=20,
                                           retry_interval_ms=0)
        organisation_ids.append(organisation.id)
        cleanup_redis(organisation_ids)  # a crashed earlier run's lock or leases, same ids in a new database
        slots.sync_allocations(organisation.id)
        results, seeded = {}, 0
        for size in sizes:
            started = time.perf_counter()
            # Put every live call back in the queue's count: N queued behind TOTAL_SLOTS live calls.
            wanted = size + TOTAL_SLOTS - queued_count(organisation.id) - live_count(organisation.id)
            seed_tasks(organisation.id, seeded, wanted)
            seeded += wanted
            print(f"seeded {wanted:,} tasks in {time.perf_counter() - started:.1f}s; "
                  f"queued now {queued_count(organisation.id):,}", flush=True)
            if live_count(organisation.id):
                end_random_calls(organisation.id, TOTAL_SLOTS)
            results[size] = measure_throughput(organisation.id, options.cycles)
            print(f"  {size:,}: {results[size]}", flush=True)
        refill = measure_refill_in_process(organisation.id, options.refill_samples)
        worker_refill, lost = ([], 0) if options.skip_worker else measure_refill_with_worker(
            organisation.id, options.refill_samples)
        utilisation, waiting, ended_rate = [], 0, 0
        if not options.skip_utilisation:
            retire_organisation(organisation.id)
            utilisation, waiting, ended_rate, utilisation_org = measure_utilisation(
                options.util_seconds, options.time_scale, options.util_ring_ms)
            organisation_ids.append(utilisation_org)
        print(f"load after: {os.getloadavg()}")
        report(sizes, results, refill, worker_refill, lost, utilisation, waiting, ended_rate)
    finally:
        try:
            cleanup_redis(organisation_ids or [])
        finally:
            from django.db import connections

            connections.close_all()
            BENCH_DATABASE.drop()


def live_count(organisation_id):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM telephony_call WHERE organisation_id = %s AND status = 'admitted'",
                       [organisation_id])
        return cursor.fetchone()[0]


def report(sizes, results, refill, worker_refill, lost, utilisation, waiting, ended_rate):
    from dialer.dispatcher import DIAL_JOB_SIZE

    floor_per_call = sum(FLOOR_SECONDS_PER_CALL.values()) + 1 / 1_600 / DIAL_JOB_SIZE
    floor = 1 / floor_per_call
    print()
    print(f"Dispatch, {CAMPAIGNS:,} campaigns, {TOTAL_SLOTS:,} slots, refills of {REFILL}")
    print(f"{'figure':<52}{'value':>14}  target")
    for size in sizes:
        r = results[size]
        cold = r["cold_admitted"] / r["cold_seconds"]
        label = f"cold fill at {size:,} queued (calls/s, {r['cold_admitted']:,} admitted)"
        print(f"{label:<52}"
              f"{cold:>14,.0f}  ≥ {TARGET_CALLS_PER_SECOND:,} {verdict(cold >= TARGET_CALLS_PER_SECOND)}")
        print(f"{f'sustained refills at {size:,} queued (calls/s)':<52}{r['sustained']:>14,.0f}  "
              f"≥ {TARGET_CALLS_PER_SECOND:,} {verdict(r['sustained'] >= TARGET_CALLS_PER_SECOND)}"
              f"  ({r['sustained'] / floor:.2f}× floor {floor:,.0f}/s)")
        print(f"{'  per CPU second of the dispatcher process (calls/s)':<52}{r['sustained_cpu']:>14,.0f}")
        print(f"{f'run cost at {size:,} queued: run admitting {REFILL} (ms)':<52}{r['run_ms']:>14.1f}"
              f"  (CPU of this process {r['run_cpu_ms']:.1f} ms)")
    if len(sizes) >= 2:
        ratio = results[sizes[-1]]["run_ms"] / results[sizes[0]]["run_ms"]
        print(f"{f'run cost {sizes[-1]:,} / {sizes[0]:,}':<52}{ratio:>14.2f}  "
              f"≤ {TARGET_RUN_COST_RATIO} {verdict(ratio <= TARGET_RUN_COST_RATIO)}")
    for label, values in (("refill in-process", refill), ("refill via Celery worker on events", worker_refill)):
        if not values:
            continue
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        print(f"{f'{label} p50 (ms, n={len(values)})':<52}{p50:>14.1f}  < {TARGET_P50_MS} {verdict(p50 < TARGET_P50_MS)}")
        print(f"{f'{label} p99 (ms)':<52}{p99:>14.1f}  < {TARGET_P99_MS} {verdict(p99 < TARGET_P99_MS)}")
    if lost:
        print(f"refill samples with no dial job within 5 s: {lost}")
    if utilisation:
        mean = statistics.mean(utilisation)
        print(f"{f'utilisation (mean of {len(utilisation)} samples; {waiting:,} still queued)':<52}"
              f"{mean * 100:>13.1f}%  ≥ {TARGET_UTILISATION:.0%} {verdict(mean >= TARGET_UTILISATION)}"
              f"  (p5 {percentile(utilisation, 0.05) * 100:.0f}%; {ended_rate:.1f} calls ended/s)")


if __name__ == "__main__":
    main()
