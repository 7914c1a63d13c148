"""Campaign controls at size: answer time, background completion, and the organisation's dialing meanwhile.

Usage (PostgreSQL and Redis running, as for the tests), from the repository root:

    .venv/bin/python bench/controls.py [--sizes 10000,100000,1000000] [--repeats 5]
        [--redis-url redis://127.0.0.1:6379/5] [--port 8766] [--workers 2] [--control-jobs 2]

It creates a throwaway database `dialer_bench_controls` on the server of DATABASE_URL, migrates
it and drops it at the end, even on failure; Redis: only the given db (default 5), flushed at the
end. It starts gunicorn (the real API) and, as the Procfile does, a Celery worker on `events`
(prefork, concurrency 2: the dispatcher's nudged runs) and one on `controls` (prefork,
`--control-jobs` processes, CONTROL_JOBS: the control jobs' batches).

Set-up: one organisation with two realtime campaigns in one workspace. Campaign A holds N queued
tasks "for later" (`INSERT ... SELECT generate_series`): two thirds first attempts, one third
retries whose last call ended in the past hour; its calling hours are shut for the next two hours,
so it is dialable (the dispatcher locks it FOR SHARE every pass) but nothing of it is due.
Campaign B is open all day and empty. For each N, through the API, each timed from the request:
- `PATCH` A's calling hours (alternating between two shut windows, so every task moves), `--repeats`
  times; then pause and resume alternately, `--repeats` times each; then one archive. Each waits
  for the control's job to finish before the next (its `finished_at` in PostgreSQL), then the task
  table is vacuumed, untimed, as autovacuum would after a million dead rows (this machine's server
  runs with autovacuum off; without it every flip bloats the table and its indexes for the next).
- Response time: the HTTP round trip. Background completion: request start to the control's
  `finished_at`; tasks/s = tasks changed / that time, also as a ratio to the floor measured on the
  same table in the same run (docs/product.md §4's `UPDATE ... WHERE id = ANY` in batches of 500, here flipping
  up to 50,000 tasks' status there and back: the load of the shared machine moves both).
- Meanwhile a probe posts a task to B (`POST /api/v1/tasks`, which nudges the dispatcher) and
  waits for its Call row (admitted, recorded, dial job published), ends that call bench-side,
  and repeats: placements per second and the placement latency, p50 and max.
Targets (docs/product.md §4), printed beside, never asserted: response < 1 s at 1,000,000 queued
(p50 of 5); background >= 50,000 tasks/s; B's new task placed < 1 s while any control runs.
"""
import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from throwaway_database import use_throwaway_database  # noqa: E402 (bench/ is on sys.path)

BENCH_DATABASE = use_throwaway_database("dialer_bench_controls")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

TARGET_RESPONSE_S = 1.0
TARGET_TASKS_PER_S = 50_000
TARGET_PLACED_S = 1.0


def verdict(ok):
    return "met" if ok else "MISSED"


def set_up():
    """Organisation, workspace, key and the two campaigns; returns (raw key, A id, B id, org id)."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from campaigns.models import Agent, CallingNumber, Campaign, CampaignType
    from campaigns.actions.tenancy import do_create_api_key, do_upsert_organisation, do_upsert_workspace

    organisation = do_upsert_organisation("Bench", 200)
    workspace = do_upsert_workspace(organisation, "Bench", 200)
    agent = Agent.objects.create(workspace=workspace, name="Bench agent", prompt="Hello.")
    number = CallingNumber.objects.create(workspace=workspace, number="+14155550123", calls_per_second=10_000)
    start, end = shut_windows()[0]
    common = dict(workspace=workspace, type=CampaignType.REALTIME, agent=agent, calling_number=number,
                  start_at=timezone.now() - dt.timedelta(days=1), max_retries=2, retry_interval_ms=3_600_000,
                  status="running")
    big = Campaign.objects.create(name="Big", calling_start=start, calling_end=end, slots=50, **common)
    other = Campaign.objects.create(name="Other", calling_start=dt.time(0), calling_end=dt.time(0), slots=20,
                                    **common)
    _, raw_key = do_create_api_key(workspace, "bench")
    return raw_key, big.id, other.id, organisation.id


def shut_windows():
    """Two daily windows (UTC) both shut for the next two hours, so re-timing moves every task."""
    hour = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).hour
    return [(dt.time(hour), dt.time((hour + 2) % 24)), (dt.time((hour + 1) % 24), dt.time((hour + 3) % 24))]


def hhmm(value):
    return value.hour * 100 + value.minute


def seed(campaign_id, count):
    """Replace A's tasks with `count` queued ones for later; every third a retry with its last call."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE campaigns_task, campaigns_campaigncontrol CASCADE")
        cursor.execute("""
            INSERT INTO campaigns_task (campaign_id, phone, context, submitted_config, timezone, status,
                attempts_made, next_attempt_at, dispatch_rank, tie_break, last_outcome, final_outcome,
                completion_reason, created_at, updated_at)
            SELECT %s, '+4420' || lpad(n::text, 8, '0'), '{}', '{}', '', 'queued', (n %% 3 = 0)::int,
                   now() + interval '1 day', 0, floor(random() * 2147483647)::int,
                   CASE WHEN n %% 3 = 0 THEN 'no-answer' ELSE '' END, '', '', now(), now()
            FROM generate_series(1, %s) AS n
        """, [campaign_id, count])
        cursor.execute("""
            INSERT INTO telephony_call (id, task_id, campaign_id, organisation_id, attempt, agent_id, carrier,
                from_number, to_number, is_callback, created_at, ended_at, status, carrier_status, outcome,
                recording_url, transcript, analysis, prompt, answered_by, window_timezone)
            SELECT gen_random_uuid(), t.id, t.campaign_id, w.organisation_id, 1, c.agent_id, 'simulated',
                   '+14155550123', t.phone, false, now() - interval '2 hours',
                   now() - (t.id %% 3600) * interval '1 second', 'ended', 'completed', 'no-answer', '', '',
                   '{}'::jsonb, '', '', ''
            FROM campaigns_task t JOIN campaigns_campaign c ON c.id = t.campaign_id
            JOIN campaigns_workspace w ON w.id = c.workspace_id
            WHERE t.campaign_id = %s AND t.attempts_made = 1
        """, [campaign_id])
        cursor.execute("UPDATE campaigns_campaign SET status = 'running' WHERE id = %s", [campaign_id])
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE campaigns_task")
        cursor.execute("VACUUM ANALYZE telephony_call")


class Probe(threading.Thread):
    """Posts a task to campaign B, waits for its Call row, ends the call, repeats, until stopped."""

    def __init__(self, session, base, campaign_id, organisation_id):
        super().__init__(daemon=True)
        self.session, self.base, self.campaign_id, self.organisation_id = session, base, campaign_id, organisation_id
        self.stop = threading.Event()
        self.latencies, self.timeouts, self.phone = [], 0, 70_000_000

    def run(self):
        from django.db import connection

        from dialer import slots

        self.started = time.perf_counter()
        try:
            while not self.stop.is_set():
                self.phone += 1
                started = time.perf_counter()
                response = self.session.post(f"{self.base}/tasks", json={
                    "phone": f"+4420{self.phone:08d}", "campaign": str(self.campaign_id)})
                response.raise_for_status()
                task_id = int(response.json()["id"])
                placed = None
                while placed is None and time.perf_counter() - started < 10:
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT id, lease_token FROM telephony_call WHERE task_id = %s", [task_id])
                        placed = cursor.fetchone()
                    if placed is None:
                        time.sleep(0.005)
                if placed is None:
                    self.timeouts += 1
                    continue
                self.latencies.append(time.perf_counter() - started)
                with connection.cursor() as cursor:
                    cursor.execute("UPDATE telephony_call SET status = 'ended', outcome = 'connected', "
                                   "ended_at = now() WHERE id = %s", [placed[0]])
                    cursor.execute("UPDATE campaigns_task SET status = 'completed', completion_reason = 'connected',"
                                   " completed_at = now() WHERE id = %s", [task_id])
                slots.release(self.organisation_id, str(placed[0]), placed[1])
        finally:
            self.seconds = time.perf_counter() - self.started
            connection.close()


def wait_for_control(campaign_id, started_at, timeout=900):
    """Seconds from `started_at` (aware) to the end of the campaign's control (0 when none ran)."""
    from django.db import connection

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM campaigns_campaigncontrol WHERE campaign_id = %s "
                           "AND finished_at IS NULL", [campaign_id])
            running = cursor.fetchone()[0]
            if not running:
                cursor.execute("SELECT max(finished_at) FROM campaigns_campaigncontrol WHERE campaign_id = %s "
                               "AND created_at >= %s", [campaign_id, started_at])
                finished = cursor.fetchone()[0]
                return max(0.0, (finished - started_at).total_seconds()) if finished else 0.0
        time.sleep(0.02)
    raise RuntimeError("the control's job did not finish")


def timed_control(session, base, campaign_id, method, path, body=None):
    """(response seconds, background seconds, tasks changed in the request, status)."""
    from django.utils import timezone

    started_at = timezone.now()
    started = time.perf_counter()
    response = session.request(method, f"{base}/campaigns/{campaign_id}{path}", json=body)
    answered = time.perf_counter() - started
    response.raise_for_status()
    background = wait_for_control(campaign_id, started_at)
    return answered, max(background, answered), response.json()


def floor_rate(campaign_id, rows):
    """Tasks/s of docs/product.md §4's floor shape on this table, this run: `UPDATE ... WHERE id = ANY` in
    batches of 500, flipping `rows` queued tasks to paused and back, one transaction per batch."""
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM campaigns_task WHERE campaign_id = %s AND status = 'queued' ORDER BY id "
                       "LIMIT %s", [campaign_id, rows])
        ids = [row[0] for row in cursor.fetchall()]
    started = time.perf_counter()
    for status in ("paused", "queued"):
        for start in range(0, len(ids), 500):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("UPDATE campaigns_task SET status = %s, updated_at = now() WHERE id = ANY(%s)",
                               [status, ids[start:start + 500]])
    return 2 * len(ids) / (time.perf_counter() - started)


def vacuum_tasks():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE campaigns_task")


def pending(campaign_id):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM campaigns_task WHERE campaign_id = %s "
                       "AND status IN ('queued', 'paused')", [campaign_id])
        return cursor.fetchone()[0]


def run_size(size, repeats, session, base, big_id, other_id, organisation_id):
    seed(big_id, size)
    floor = floor_rate(big_id, min(size, 50_000))
    windows = shut_windows()
    plan = [("update", "PATCH", "", {"callingHours": {"start": hhmm(windows[(i + 1) % 2][0]),
                                                      "end": hhmm(windows[(i + 1) % 2][1])}})
            for i in range(repeats)]
    for _ in range(repeats):
        plan += [("pause", "POST", "/pause", None), ("resume", "POST", "/resume", None)]
    plan.append(("archive", "POST", "/archive", None))
    results = {}
    probe = Probe(session, base, other_id, organisation_id)
    probe.start()
    try:
        for verb, method, path, body in plan:
            tasks = pending(big_id)
            answered, background, _ = timed_control(session, base, big_id, method, path, body)
            results.setdefault(verb, []).append((answered, background, tasks))
            vacuum_tasks()
    finally:
        probe.stop.set()
        probe.join(30)
    return results, probe, floor


def report(size, results, probe, floor):
    seconds = probe.seconds
    print(f"\n{size:,} queued tasks in campaign A; floor this run (UPDATE ... = ANY, batches of 500, a status "
          f"flip): {floor:,.0f} tasks/s")
    print(f"  {'control':8} {'response p50':>13} {'max':>8}   {'background p50':>15} {'tasks/s p50':>12}   target")
    for verb, runs in results.items():
        answered = statistics.median(r[0] for r in runs)
        background = statistics.median(r[1] for r in runs)
        rate = statistics.median(r[2] / r[1] for r in runs if r[1] > 0)
        check = "" if size < 1_000_000 else f"response {verdict(answered < TARGET_RESPONSE_S)}, "
        print(f"  {verb:8} {answered * 1000:10.0f} ms {max(r[0] for r in runs) * 1000:5.0f} ms   "
              f"{background:13.2f} s {rate:12,.0f}   {check}rate {verdict(rate >= TARGET_TASKS_PER_S)}, "
              f"{rate / floor:.2f}x floor ({len(runs)} run{'s' if len(runs) != 1 else ''})")
    if probe.latencies:
        p50, worst = statistics.median(probe.latencies), max(probe.latencies)
        print(f"  campaign B meanwhile: {len(probe.latencies)} new tasks placed in {seconds:.1f} s "
              f"({len(probe.latencies) / seconds:.1f} placements/s, one at a time), latency p50 {p50 * 1000:.0f} ms, "
              f"max {worst * 1000:.0f} ms, {probe.timeouts} not placed within 10 s   "
              f"(target < {TARGET_PLACED_S:.0f} s: {verdict(worst < TARGET_PLACED_S and not probe.timeouts)})")


def wait_for(url, timeout=60):
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"nothing answered at {url}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--control-jobs", type=int, default=2, help="the controls worker's processes (CONTROL_JOBS)")
    options = parser.parse_args()
    # Production settings, served over plain HTTP on loopback: no redirect to HTTPS.
    env = {**os.environ, "REDIS_URL": options.redis_url, "CELERY_BROKER_URL": options.redis_url, "DEBUG": "false",
           "SECURE_HTTPS": "false", "SECRET_KEY": "bench-only", "LOG_LEVEL": "WARNING", "API_THROTTLE_RATE": "1000000/min",
           "DATABASE_CONN_MAX_AGE": "60", "CONTROL_JOBS": str(options.control_jobs)}
    os.environ.update(env)
    BENCH_DATABASE.recreate()
    processes = []
    try:
        import requests

        raw_key, big_id, other_id, organisation_id = set_up()
        from django.db import connections
        connections.close_all()
        (ROOT / "test-artifacts").mkdir(exist_ok=True)
        log = open(ROOT / "test-artifacts" / "bench-controls-processes.log", "ab")
        processes.append(subprocess.Popen(
            [str(ROOT / ".venv/bin/gunicorn"), "config.wsgi:application", "--bind", f"127.0.0.1:{options.port}",
             "--workers", str(options.workers), "--timeout", "120", "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        for queue, concurrency in (("events", 2), ("controls", options.control_jobs)):
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "-c", str(concurrency),
                 "-P", "prefork", "-l", "warning", "-n", f"bench-{queue}-{os.getpid()}@%h", "--without-mingle",
                 "--without-gossip"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        base = f"http://127.0.0.1:{options.port}/api/v1"
        wait_for(f"{base}/slots")
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {raw_key}"
        time.sleep(3)  # the worker's start-up
        print(f"load before: {os.getloadavg()[0]:.2f} (1-minute), {os.cpu_count()} cores")
        for size in [int(size) for size in options.sizes.split(",")]:
            results, probe, floor = run_size(size, options.repeats, session, base, big_id, other_id,
                                             organisation_id)
            report(size, results, probe, floor)
            print(f"  load now: {os.getloadavg()[0]:.2f}")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        import redis
        redis.Redis.from_url(options.redis_url).flushdb()
        from django.db import connections
        connections.close_all()
        BENCH_DATABASE.drop()


if __name__ == "__main__":
    main()
