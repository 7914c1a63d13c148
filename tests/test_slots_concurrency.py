"""8 processes hammer acquire/release on one organisation while a monitor samples usage."""
import multiprocessing
import random
import time

from dialer import slots
from dialer.slot_model import Allocation, AllocationTree, CampaignAllocation

ORG = 5
SECONDS = 3.0
TREE = AllocationTree(
    total=12,
    workspaces={1: Allocation(6, soft=True), 2: Allocation(4, soft=False), 3: Allocation(2, soft=True)},
    campaigns={
        11: CampaignAllocation(1, 2, soft=True), 12: CampaignAllocation(1, 3, soft=False),
        21: CampaignAllocation(2, 3, soft=True), 22: CampaignAllocation(2, 2, soft=False),
        31: CampaignAllocation(3, 1, soft=True),
    },
)


def hammer(seed, deadline, admitted_count):
    rng = random.Random(seed)
    held, admitted = [], 0
    while time.monotonic() < deadline:
        if held and (rng.random() < 0.5 or len(held) > 6):
            lease = held.pop(rng.randrange(len(held)))
            assert slots.release(ORG, lease.call_id, lease.token)
        else:
            result = slots.acquire(ORG, rng.choice(sorted(TREE.campaigns)), f"w{seed}-{admitted}-{rng.random()}")
            if result.admitted:
                held.append(result)
                admitted += 1
        if rng.random() < 0.02:
            slots.set_waiting(ORG, {c: rng.randint(0, 3) for c in TREE.campaigns})
    for lease in held:
        slots.release(ORG, lease.call_id, lease.token)
    admitted_count.value = admitted


def test_live_calls_never_exceed_a_hard_cap_or_the_total_under_eight_processes():
    slots.write_allocations(ORG, TREE)
    slots.restore_leases(ORG, [])
    context = multiprocessing.get_context("fork")
    deadline = time.monotonic() + SECONDS
    counts = [context.Value("i", 0) for _ in range(8)]
    workers = [context.Process(target=hammer, args=(seed, deadline, counts[seed])) for seed in range(8)]
    for worker in workers:
        worker.start()

    peak = {"organisation": 0, "workspaces": {}, "campaigns": {}}
    samples = 0
    while any(worker.is_alive() for worker in workers):
        readout = slots.usage(ORG)
        samples += 1
        peak["organisation"] = max(peak["organisation"], readout["organisation"]["used"])
        for level in ("workspaces", "campaigns"):
            for node_id, node in readout[level].items():
                peak[level][node_id] = max(peak[level].get(node_id, 0), node["used"])
    for worker in workers:
        worker.join()

    assert all(worker.exitcode == 0 for worker in workers)
    assert samples > 50 and sum(count.value for count in counts) > 500
    assert peak["organisation"] <= TREE.total
    for workspace_id, allocation in TREE.workspaces.items():
        assert allocation.soft or peak["workspaces"][workspace_id] <= allocation.slots
    for campaign_id, allocation in TREE.campaigns.items():
        assert allocation.soft or peak["campaigns"][campaign_id] <= allocation.slots
    assert slots.usage(ORG)["organisation"]["used"] == 0
    assert slots.expired_leases(ORG) == []
