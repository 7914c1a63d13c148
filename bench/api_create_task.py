"""Create Task API latency against a real gunicorn (docs/product.md §4: p50 < 15 ms; bulk 1,000 < 300 ms).

Run from the repository root with PostgreSQL and Redis up:

    .venv/bin/python bench/api_create_task.py [--requests 500] [--workers 2] [--port 8765]

It creates a throwaway database (bench_api_<pid>), migrates it, sets up a workspace with a
realtime campaign and an API key, starts gunicorn on 127.0.0.1, times single POST /api/v1/tasks
(one request at a time, a fresh number each) and one bulk create of 1,000 tasks, prints the
figures against the targets, then stops gunicorn and drops the database. Celery messages the
tasks_changed nudge may publish go to Redis db 11 (BENCH_REDIS_URL), which is flushed at the end.
Figures are printed, never asserted.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests
from throwaway_database import use_throwaway_database

ROOT = Path(__file__).resolve().parent.parent
TARGET_P50_MS = 15
TARGET_BULK_MS = 300


def set_up_workspace():
    """Org, workspace, agent, number, realtime campaign and key; returns (raw key, campaign id)."""
    import django
    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from campaigns.models import Agent, CallingNumber, Campaign, CampaignType
    from campaigns.actions.tenancy import do_create_api_key, do_upsert_organisation, do_upsert_workspace

    organisation = do_upsert_organisation("Bench", 1000)
    workspace = do_upsert_workspace(organisation, "Bench", 500)
    agent = Agent.objects.create(workspace=workspace, name="Bench agent", prompt="Hi ${name}")
    number = CallingNumber.objects.create(workspace=workspace, number="+14155550123")
    campaign = Campaign.objects.create(
        workspace=workspace, type=CampaignType.REALTIME, name="Bench", agent=agent, calling_number=number,
        start_at=timezone.now(), calling_start=timezone.datetime.min.time(), calling_end=timezone.datetime.min.time(),
        max_retries=1, retry_interval_ms=60_000, slots=100)
    _, raw_key = do_create_api_key(workspace, "bench")
    from django.db import connections
    connections.close_all()
    return raw_key, campaign.id


def wait_for(url, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer at {url}")


def body(campaign_id, n):
    return {"phone": f"+4420{n:08d}", "campaign": str(campaign_id), "start": 900, "end": 2000,
            "timezone": "Europe/London", "retries": 2, "intervals": [180000], "priorities": [100, 50],
            "retryOutcomes": ["voicemail"], "context": {"name": f"Lead {n}"}}


def percentile(samples, fraction):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    database = use_throwaway_database(f"bench_api_{os.getpid()}")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings",
           "DATABASE_URL": os.environ["DATABASE_URL"], "REDIS_URL": redis_url,
           "CELERY_BROKER_URL": redis_url, "DEBUG": "false", "SECRET_KEY": "bench-only", "LOG_LEVEL": "WARNING",
           # gunicorn answers plain HTTP on loopback: no redirect to HTTPS.
           "SECURE_HTTPS": "false",
           "API_THROTTLE_RATE": "1000000/min"}
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    database.recreate()
    server = None
    try:
        raw_key, campaign_id = set_up_workspace()
        server = subprocess.Popen(
            [str(ROOT / ".venv/bin/gunicorn"), "config.wsgi:application", "--bind", f"127.0.0.1:{args.port}",
             "--workers", str(args.workers), "--log-level", "warning"], cwd=ROOT, env=env)
        base = f"http://127.0.0.1:{args.port}/api/v1"
        wait_for(f"{base}/slots")
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {raw_key}"
        for n in range(20):  # warm-up: imports, connections, caches in every worker
            session.post(f"{base}/tasks", json=body(campaign_id, n)).raise_for_status()
        latencies = []
        for n in range(100, 100 + args.requests):
            started = time.perf_counter()
            response = session.post(f"{base}/tasks", json=body(campaign_id, n))
            latencies.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
        bulk = [body(campaign_id, 1_000_000 + n) for n in range(1000)]
        started = time.perf_counter()
        response = session.post(f"{base}/tasks", json=bulk)
        bulk_ms = (time.perf_counter() - started) * 1000
        response.raise_for_status()
        assert len(response.json()["tasks"]) == 1000

        p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
        print(f"single POST /api/v1/tasks, {args.requests} sequential requests, {args.workers} gunicorn workers")
        print(f"  p50 {p50:6.2f} ms   (target < {TARGET_P50_MS} ms: {'met' if p50 < TARGET_P50_MS else 'MISSED'})")
        print(f"  p99 {p99:6.2f} ms")
        print(f"bulk POST /api/v1/tasks of 1,000 tasks: {bulk_ms:.1f} ms "
              f"(target < {TARGET_BULK_MS} ms: {'met' if bulk_ms < TARGET_BULK_MS else 'MISSED'})")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        import redis
        redis.Redis.from_url(redis_url).flushdb()
        database.drop()


if __name__ == "__main__":
    main()
