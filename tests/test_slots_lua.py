"""Keyspace-level tests of the slot scripts (dialer/lua/*.lua) through dialer.slots, on real Redis."""
import pytest
from django.conf import settings

from dialer import keys, slots
from dialer.slot_model import Allocation, AllocationTree, CampaignAllocation, Denial

ORG = 7
NOW = 1_000_000
LEASE_MS = settings.SLOT_LEASE_SECONDS * 1000


@pytest.fixture
def tree(redis_client):
    allocation = AllocationTree(
        total=10,
        workspaces={1: Allocation(6, soft=True), 2: Allocation(4, soft=False)},
        campaigns={
            11: CampaignAllocation(1, 2, soft=True),
            12: CampaignAllocation(1, 4, soft=False),
            21: CampaignAllocation(2, 4, soft=False),
        },
    )
    slots.write_allocations(ORG, allocation)
    slots.restore_leases(ORG, [], now_ms=NOW)
    return allocation


def test_keyspace_acquire_leases_the_call_at_every_level_scored_by_expiry(tree, redis_client):
    lease = slots.acquire(ORG, 11, "call-1", now_ms=NOW)
    assert lease.expires_at_ms == NOW + LEASE_MS
    for key in (keys.organisation_leases(ORG), keys.workspace_leases(ORG, 1), keys.campaign_leases(ORG, 11)):
        assert redis_client.zscore(key, "call-1") == NOW + LEASE_MS
    assert redis_client.hget(keys.lease_records(ORG), "call-1") == f"{lease.token} {NOW + LEASE_MS} 11 1"


def test_keyspace_every_key_of_an_organisation_shares_its_hash_tag(tree, redis_client):
    slots.acquire(ORG, 11, "call-1", now_ms=NOW)
    organisation_keys = set(redis_client.keys("*")) - {keys.ORGANISATIONS_WITH_LEASES}  # deployment-wide
    assert {key.split("{")[1].split("}")[0] for key in organisation_keys} == {f"org:{ORG}"}


def test_keyspace_without_an_epoch_nothing_is_admitted(redis_client):
    slots.write_allocations(ORG, AllocationTree(5, {1: Allocation(5, True)}, {1: CampaignAllocation(1, 5, True)}))
    assert slots.acquire(ORG, 1, "call-1") == slots.Denied(Denial.EPOCH_MISSING)
    slots.restore_leases(ORG, [])
    assert slots.acquire(ORG, 1, "call-1").admitted


def test_keyspace_acquiring_the_same_call_twice_returns_the_existing_lease(tree):
    first = slots.acquire(ORG, 11, "call-1", now_ms=NOW)
    again = slots.acquire(ORG, 11, "call-1", now_ms=NOW + 5)
    assert (again.token, again.expires_at_ms, again.reacquired) == (first.token, first.expires_at_ms, True)
    assert slots.usage(ORG, now_ms=NOW)["campaigns"][11]["used"] == 1


def test_keyspace_fencing_tokens_increase_per_organisation(tree):
    tokens = [slots.acquire(ORG, 12, f"call-{i}", now_ms=NOW).token for i in range(3)]
    assert tokens == sorted(tokens) and len(set(tokens)) == 3


def test_keyspace_double_release_frees_once(tree):
    lease = slots.acquire(ORG, 11, "call-1", now_ms=NOW)
    assert slots.release(ORG, "call-1", lease.token) is True
    assert slots.release(ORG, "call-1", lease.token) is False
    assert slots.usage(ORG, now_ms=NOW)["organisation"]["used"] == 0


def test_keyspace_a_stale_release_after_reacquire_leaves_the_new_lease(tree, redis_client):
    old = slots.acquire(ORG, 11, "call-1", now_ms=NOW)
    slots.release(ORG, "call-1", old.token)
    new = slots.acquire(ORG, 11, "call-1", now_ms=NOW)
    assert new.token > old.token
    assert slots.release(ORG, "call-1", old.token) is False
    assert slots.renew(ORG, "call-1", old.token, NOW + 10 * LEASE_MS) is False
    assert redis_client.zscore(keys.organisation_leases(ORG), "call-1") == NOW + LEASE_MS
    assert slots.release(ORG, "call-1", new.token) is True


def test_keyspace_renewing_a_released_lease_does_nothing(tree, redis_client):
    lease = slots.acquire(ORG, 11, "call-1", now_ms=NOW)
    slots.release(ORG, "call-1", lease.token)
    assert slots.renew(ORG, "call-1", lease.token, NOW + 2 * LEASE_MS) is False
    assert redis_client.zcard(keys.organisation_leases(ORG)) == 0
    assert not redis_client.hexists(keys.lease_records(ORG), "call-1")


def test_keyspace_renew_moves_the_expiry_at_every_level(tree, redis_client):
    lease = slots.acquire(ORG, 11, "call-1", now_ms=NOW)
    assert slots.renew(ORG, "call-1", lease.token, NOW + 2 * LEASE_MS) is True
    for key in (keys.organisation_leases(ORG), keys.workspace_leases(ORG, 1), keys.campaign_leases(ORG, 11)):
        assert redis_client.zscore(key, "call-1") == NOW + 2 * LEASE_MS


def test_keyspace_expired_leases_are_pruned_by_the_next_acquire_and_kept_for_the_reaper(tree, redis_client):
    for i in range(4):
        slots.acquire(ORG, 12, f"old-{i}", now_ms=NOW)
    later = NOW + LEASE_MS
    assert slots.acquire(ORG, 12, "new", now_ms=later).admitted
    assert redis_client.zrange(keys.campaign_leases(ORG, 12), 0, -1) == ["new"]
    assert sorted(redis_client.zrange(keys.expired_leases(ORG), 0, -1)) == [f"old-{i}" for i in range(4)]
    assert slots.expired_leases(ORG, now_ms=later) == [f"old-{i}" for i in range(4)]


def test_keyspace_reaper_renews_live_calls_and_frees_the_rest(tree):
    for call_id in ("live", "gone"):
        slots.acquire(ORG, 12, call_id, now_ms=NOW)
    later = NOW + LEASE_MS + 1
    report = slots.reap_expired(ORG, lambda call_id: call_id == "live", now_ms=later)
    assert (report.renewed, report.freed) == (["live"], ["gone"])
    assert slots.expired_leases(ORG, now_ms=later) == []
    assert slots.usage(ORG, now_ms=later)["campaigns"][12]["used"] == 1
    assert slots.reap_expired(ORG, lambda call_id: False, now_ms=later) == slots.ReapReport([], [])


def test_keyspace_renewing_a_pruned_lease_occupies_its_slot_again(tree):
    lease = slots.acquire(ORG, 12, "call-1", now_ms=NOW)
    later = NOW + LEASE_MS
    slots.acquire(ORG, 12, "call-2", now_ms=later)
    assert slots.renew(ORG, "call-1", lease.token, later + LEASE_MS) is True
    assert slots.usage(ORG, now_ms=later)["campaigns"][12]["used"] == 2
    assert slots.expired_leases(ORG, now_ms=later) == []


def test_keyspace_hard_campaign_refuses_at_its_allocation(tree):
    results = slots.acquire_many(ORG, [(12, f"call-{i}") for i in range(5)], now_ms=NOW)
    assert [r.admitted for r in results] == [True] * 4 + [False]
    assert results[-1].reason == Denial.CAMPAIGN_FULL


def test_keyspace_soft_campaign_borrows_until_a_sibling_has_waiting_work(tree):
    assert all(r.admitted for r in slots.acquire_many(ORG, [(11, f"a-{i}") for i in range(4)], now_ms=NOW))
    slots.set_waiting(ORG, {12: 2})
    assert slots.acquire(ORG, 11, "a-4", now_ms=NOW).admitted  # soft workspace: the org's idle room covers 12's claim
    slots.set_waiting(ORG, {12: 4, 21: 4})
    assert slots.acquire(ORG, 11, "a-5", now_ms=NOW) == slots.Denied(Denial.CAMPAIGN_SIBLINGS_WAITING)
    assert slots.acquire(ORG, 12, "b-0", now_ms=NOW).admitted


def test_keyspace_admission_consumes_waiting_work_and_keeps_claims_exact(tree, redis_client):
    slots.set_waiting(ORG, {12: 2, 21: 1, 99: 5})
    assert slots.claim_figures(ORG)[0] == {"c:12": 2, "w:1": 2, "c:21": 1, "w:2": 1}
    slots.acquire(ORG, 12, "b-0", now_ms=NOW)
    assert slots.claim_figures(ORG) == (
        {"c:12": 1, "w:1": 1, "c:21": 1, "w:2": 1},
        {"c:12": 1, "W:1": 1, "w:1": 1, "c:21": 1, "W:2": 1, "w:2": 1, "O": 2},
    )


def test_keyspace_workspace_borrowing_refused_while_another_workspace_waits(redis_client):
    tree = AllocationTree(4, {1: Allocation(2, True), 2: Allocation(2, True)},
                          {1: CampaignAllocation(1, 4, True), 2: CampaignAllocation(2, 4, True)})
    slots.write_allocations(ORG, tree)
    slots.restore_leases(ORG, [], now_ms=NOW)
    assert all(r.admitted for r in slots.acquire_many(ORG, [(1, f"a-{i}") for i in range(3)], now_ms=NOW))
    slots.set_waiting(ORG, {2: 2})
    assert slots.acquire(ORG, 1, "a-3", now_ms=NOW) == slots.Denied(Denial.WORKSPACE_SIBLINGS_WAITING)
    assert slots.acquire(ORG, 2, "b-0", now_ms=NOW).admitted


def test_keyspace_lowered_allocations_admit_nothing_until_use_falls(tree):
    leases = [slots.acquire(ORG, 12, f"call-{i}", now_ms=NOW) for i in range(3)]
    slots.write_allocations(ORG, AllocationTree(
        2, tree.workspaces, {**tree.campaigns, 12: CampaignAllocation(1, 1, soft=False)}))
    assert slots.acquire(ORG, 12, "call-x", now_ms=NOW) == slots.Denied(Denial.ORGANISATION_FULL)
    readout = slots.usage(ORG, now_ms=NOW)
    assert readout["campaigns"][12] == {"used": 3, "allocation": 1, "mode": "hard", "borrowed": 2, "workspace_id": 1}
    assert readout["organisation"]["borrowed"] == 1
    for lease in leases[:2]:
        slots.release(ORG, lease.call_id, lease.token)
    assert slots.acquire(ORG, 12, "call-x", now_ms=NOW) == slots.Denied(Denial.CAMPAIGN_FULL)
    slots.release(ORG, leases[2].call_id, leases[2].token)
    assert slots.acquire(ORG, 12, "call-x", now_ms=NOW).admitted


def test_keyspace_a_mode_switch_applies_to_the_next_admission(tree):
    slots.acquire_many(ORG, [(12, f"call-{i}") for i in range(4)], now_ms=NOW)
    assert slots.acquire(ORG, 12, "call-4", now_ms=NOW).reason == Denial.CAMPAIGN_FULL
    slots.write_allocations(ORG, AllocationTree(
        tree.total, tree.workspaces, {**tree.campaigns, 12: CampaignAllocation(1, 4, soft=True)}))
    assert slots.acquire(ORG, 12, "call-4", now_ms=NOW).admitted


def test_keyspace_a_campaign_removed_from_the_tree_is_refused_but_its_calls_release(tree):
    lease = slots.acquire(ORG, 21, "call-1", now_ms=NOW)
    campaigns = {c: a for c, a in tree.campaigns.items() if c != 21}
    slots.write_allocations(ORG, AllocationTree(tree.total, tree.workspaces, campaigns))
    assert slots.acquire(ORG, 21, "call-2", now_ms=NOW) == slots.Denied(Denial.UNKNOWN_CAMPAIGN)
    assert slots.release(ORG, "call-1", lease.token) is True
    assert slots.usage(ORG, now_ms=NOW)["organisation"]["used"] == 0


def test_keyspace_usage_reports_each_node(tree):
    slots.acquire_many(ORG, [(11, f"call-{i}") for i in range(3)], now_ms=NOW)
    readout = slots.usage(ORG, now_ms=NOW)
    assert readout["organisation"] == {"used": 3, "allocation": 10, "mode": "hard", "borrowed": 0}
    assert readout["workspaces"] == {
        1: {"used": 3, "allocation": 6, "mode": "soft", "borrowed": 0},
        2: {"used": 0, "allocation": 4, "mode": "hard", "borrowed": 0},
    }
    assert readout["campaigns"][11] == {"used": 3, "allocation": 2, "mode": "soft", "borrowed": 1, "workspace_id": 1}


@pytest.mark.parametrize("sibling_waiting, admitted", [(2, True), (3, False)])
def test_keyspace_campaign_borrows_exactly_while_room_minus_one_covers_sibling_claims(
        redis_client, sibling_waiting, admitted):
    tree = AllocationTree(10, {1: Allocation(4, False)},
                          {1: CampaignAllocation(1, 1, True), 2: CampaignAllocation(1, 3, False)})
    slots.write_allocations(ORG, tree)
    slots.restore_leases(ORG, [], now_ms=NOW)
    slots.acquire(ORG, 1, "a-0", now_ms=NOW)
    slots.set_waiting(ORG, {2: sibling_waiting})
    assert slots.acquire(ORG, 1, "a-1", now_ms=NOW).admitted is admitted


@pytest.mark.parametrize("sibling_waiting, admitted", [(2, True), (3, False)])
def test_keyspace_workspace_borrows_exactly_while_free_minus_one_covers_sibling_claims(
        redis_client, sibling_waiting, admitted):
    tree = AllocationTree(4, {1: Allocation(1, True), 2: Allocation(3, True)},
                          {1: CampaignAllocation(1, 4, True), 2: CampaignAllocation(2, 3, True)})
    slots.write_allocations(ORG, tree)
    slots.restore_leases(ORG, [], now_ms=NOW)
    slots.acquire(ORG, 1, "a-0", now_ms=NOW)
    slots.set_waiting(ORG, {2: sibling_waiting})
    assert slots.acquire(ORG, 1, "a-1", now_ms=NOW).admitted is admitted


def test_keyspace_scripts_are_loaded_again_after_redis_forgot_them(tree, redis_client):
    redis_client.script_flush()
    assert slots.acquire(ORG, 11, "call-1", now_ms=NOW).admitted
    redis_client.script_flush()
    batch = slots.acquire_many(ORG, [(12, "call-2"), (12, "call-3")], now_ms=NOW)
    assert [lease.admitted for lease in batch] == [True, True]
    redis_client.script_flush()
    assert slots.release_many(ORG, [(lease.call_id, lease.token) for lease in batch]) == [True, True]
    assert slots.usage(ORG, now_ms=NOW)["organisation"]["used"] == 1
