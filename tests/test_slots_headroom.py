"""Keyspace-level tests of lua/headroom.lua: how many candidates the dispatcher may claim."""
from dialer import slots
from dialer.slot_model import Allocation, AllocationTree, CampaignAllocation

ORG = 424242


def setup_tree(total=10):
    # workspace 1 hard 6: campaign 11 hard 2, campaign 12 soft 2; workspace 2 soft 4: campaign 21 hard 4.
    slots.restore_leases(ORG, [])  # opens the epoch
    slots.write_allocations(ORG, AllocationTree(
        total, {1: Allocation(6, False), 2: Allocation(4, True)},
        {11: CampaignAllocation(1, 2, False), 12: CampaignAllocation(1, 2, True), 21: CampaignAllocation(2, 4, False)}))


def test_keyspace_headroom_is_allocation_minus_used_for_hard_and_the_free_capacity_for_soft(redis_client):
    setup_tree()
    assert slots.headroom(ORG, 1000) == slots.Headroom(free=10, campaigns={11: 2, 12: 10, 21: 4})
    for call_id in ("a", "b"):
        assert slots.acquire(ORG, 11, call_id).admitted
    assert slots.acquire(ORG, 21, "c").admitted
    assert slots.headroom(ORG, 1000) == slots.Headroom(free=7, campaigns={12: 7, 21: 3})


def test_keyspace_headroom_is_capped_per_campaign_and_empty_when_the_organisation_is_full(redis_client):
    setup_tree(total=3)
    assert slots.headroom(ORG, 2).campaigns == {11: 2, 12: 2, 21: 2}
    for campaign_id, call_id in ((21, "a"), (21, "b"), (21, "c")):
        assert slots.acquire(ORG, campaign_id, call_id).admitted
    assert slots.headroom(ORG, 1000).campaigns == {}


def test_keyspace_expired_leases_do_not_count_against_headroom(redis_client):
    setup_tree()
    now_ms = 1_000_000_000_000
    assert slots.acquire(ORG, 11, "old", now_ms=now_ms).admitted
    later = now_ms + slots._lease_ms() + 1
    assert slots.headroom(ORG, 1000, now_ms=later).campaigns[11] == 2
