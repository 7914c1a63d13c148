"""Slot lease throughput: acquire+release pairs/s from 8 clients beside a plain INCR (docs/product.md §4).

Run from the repository root with Redis up (PostgreSQL is not used):

    .venv/bin/python bench/slots.py [--redis-url redis://127.0.0.1:6379/2] [--seconds 5] [--clients 8] [--batch 100]

One organisation with 1,000 campaigns over 10 workspaces (mixed hard/soft, with waiting work,
a total large enough to admit every call) is written under its own namespace in the given Redis db. Then,
for `--seconds` each, `--clients` processes run acquire+release pairs on random campaigns:
first one script per round trip (acquire, then release), then pipelined (`acquire_many` and
`release_many` in batches of `--batch`). `redis-benchmark -t incr -q` (its default 50 clients,
same server, same db) runs before, between and after the two modes; the ratio of each mode to
the median of those three INCR figures is printed beside the 0.3× target (on a shared 2-core
machine one INCR run can swing by a third). The benchmark's keys are deleted at the end. Figures are printed, never asserted.
"""
import argparse
import multiprocessing
import os
import random
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORG = 990_001
TARGET_RATIO = 0.3


def set_up_django(redis_url):
    os.environ["REDIS_URL"] = redis_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django
    django.setup()


def allocation_tree():
    from dialer.slot_model import Allocation, AllocationTree, CampaignAllocation

    workspaces = {w: Allocation(10_000, soft=w % 2 == 0) for w in range(1, 11)}
    campaigns = {c: CampaignAllocation(1 + c % 10, 50, soft=c % 3 == 0) for c in range(1, 1001)}
    return AllocationTree(1_000_000, workspaces, campaigns)


def run_pairs(pipelined, batch, deadline, result):
    from dialer import slots

    rng = random.Random()
    campaign_ids = list(range(1, 1001))
    pairs = 0
    while time.monotonic() < deadline:
        if pipelined:
            candidates = [(rng.choice(campaign_ids), uuid.uuid4().hex) for _ in range(batch)]
            leases = slots.acquire_many(ORG, candidates)
            slots.release_many(ORG, [(lease.call_id, lease.token) for lease in leases if lease.admitted])
            pairs += sum(lease.admitted for lease in leases)
        else:
            lease = slots.acquire(ORG, rng.choice(campaign_ids), uuid.uuid4().hex)
            slots.release(ORG, lease.call_id, lease.token)
            pairs += 1
    result.value = pairs


def measure_pairs(clients, seconds, pipelined, batch):
    context = multiprocessing.get_context("fork")
    results = [context.Value("q", 0) for _ in range(clients)]
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    workers = [context.Process(target=run_pairs, args=(pipelined, batch, deadline, r)) for r in results]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(r.value for r in results) / (time.monotonic() - started)


def measure_incr(redis_url):
    from redis.connection import parse_url

    options = parse_url(redis_url)
    command = ["redis-benchmark", "-h", options.get("host", "127.0.0.1"), "-p", str(options.get("port", 6379)),
               "--dbnum", str(options.get("db", 0)), "-t", "incr", "-n", "300000", "-q"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    # -q prints e.g. "INCR: 98231.73 requests per second, p50=0.263 msec"; progress lines end in \r.
    match = re.search(r"INCR: ([\d.]+) requests per second", output.split("\r")[-1])
    return float(match.group(1)), " ".join(command)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/2")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    options = parser.parse_args()
    set_up_django(options.redis_url)
    from config.redis_client import get_redis
    from dialer import keys, slots

    slots.write_allocations(ORG, allocation_tree())
    slots.restore_leases(ORG, [])
    slots.set_waiting(ORG, {c: 3 for c in range(1, 1001, 7)})
    try:
        incr_runs = [measure_incr(options.redis_url)]
        single = measure_pairs(options.clients, options.seconds, pipelined=False, batch=1)
        incr_runs.append(measure_incr(options.redis_url))
        pipelined = measure_pairs(options.clients, options.seconds, pipelined=True, batch=options.batch)
        incr_runs.append(measure_incr(options.redis_url))
    finally:
        client = get_redis()
        doomed = list(client.scan_iter(match=f"{keys.slots_namespace(ORG).replace('{', '[{]').replace('}', '[}]')}*"))
        doomed.append("counter:__rand_int__")
        for start in range(0, len(doomed), 500):
            client.delete(*doomed[start:start + 500])

    command = incr_runs[0][1]
    incr = statistics.median(rate for rate, _ in incr_runs)
    print(f"redis-benchmark INCR ({command}): median {incr:,.0f} ops/s "
          f"(runs: {', '.join(f'{rate:,.0f}' for rate, _ in incr_runs)})")
    print(f"{'mode':<38}{'pairs/s':>12}{'× INCR':>10}{'target':>10}")
    for label, rate in ((f"one script per round trip, {options.clients} clients", single),
                        (f"pipelined batches of {options.batch}, {options.clients} clients", pipelined)):
        verdict = "met" if rate / incr >= TARGET_RATIO else "missed"
        print(f"{label:<38}{rate:>12,.0f}{rate / incr:>10.2f}{TARGET_RATIO:>9.1f}× {verdict}")


if __name__ == "__main__":
    main()
