"""Stateful test: the Lua slot scripts and the pure reference model, driven side by side.

Random trees, modes, acquisitions, releases, renewals, expiries, reaping, allocation changes and
waiting work; after every step Redis must agree with `dialer.slot_model.SlotModel` on every
decision, every count, every lease set and every claim.
"""
from django.conf import settings as django_settings
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

from config.redis_client import get_redis
from dialer import keys, slots
from dialer.slot_model import (
    Allocation, AllocationTree, CampaignAllocation, SlotModel, admit, claim, workspace_waiting,
)

ORG = 3
LEASE_MS = django_settings.SLOT_LEASE_SECONDS * 1000
MAX_CAMPAIGN_ID = 9


@st.composite
def trees(draw):
    workspaces, campaigns = {}, {}
    campaign_ids = iter(range(1, MAX_CAMPAIGN_ID + 1))
    for workspace_id in range(1, draw(st.integers(1, 3)) + 1):
        workspaces[workspace_id] = Allocation(draw(st.integers(0, 4)), draw(st.booleans()))
        for _ in range(draw(st.integers(1, 3))):
            campaigns[next(campaign_ids)] = CampaignAllocation(workspace_id, draw(st.integers(1, 4)), draw(st.booleans()))
    return AllocationTree(draw(st.integers(1, 8)), workspaces, campaigns)


class SlotMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.redis = get_redis()
        self.redis.flushdb()
        self.now = 1_000_000
        self.calls = 0
        self.max_token = 0
        self.released = []

    @initialize(tree=trees())
    def open_organisation(self, tree):
        self.model = SlotModel(tree)
        slots.write_allocations(ORG, tree)
        slots.restore_leases(ORG, [], now_ms=self.now)

    def live_leases(self):
        return sorted(call_id for call_id, lease in self.model.leases.items() if not lease.pruned)

    @rule(campaign_ids=st.lists(st.integers(1, MAX_CAMPAIGN_ID + 1), min_size=1, max_size=6))
    def acquire(self, campaign_ids):
        for campaign_id in campaign_ids:
            self.acquire_one(campaign_id)

    def acquire_one(self, campaign_id):
        self.calls += 1
        call_id = f"call-{self.calls}"
        self.model.prune(self.now)
        before = self.model.occupancy()
        expected = admit(self.model.tree, before, self.model.waiting, campaign_id)
        result = slots.acquire(ORG, campaign_id, call_id, now_ms=self.now)
        if expected is not None:
            assert result == slots.Denied(expected)
            return
        assert result.admitted and not result.reacquired
        assert result.token > self.max_token
        self.max_token = result.token
        self.model.acquire(campaign_id, call_id, result.token, self.now, LEASE_MS)
        self.check_admission_within_caps(campaign_id)
        self.check_borrowing_spared_hungry_siblings(campaign_id, before)

    def check_admission_within_caps(self, campaign_id):
        tree, after = self.model.tree, self.model.occupancy()
        campaign = tree.campaigns[campaign_id]
        workspace = tree.workspaces[campaign.workspace_id]
        assert after.organisation <= tree.total
        assert workspace.soft or after.workspaces[campaign.workspace_id] <= workspace.slots
        assert campaign.soft or after.campaigns[campaign_id] <= campaign.slots

    def check_borrowing_spared_hungry_siblings(self, campaign_id, before):
        tree, after, waiting = self.model.tree, self.model.occupancy(), self.model.waiting
        campaign = tree.campaigns[campaign_id]
        workspace_id = campaign.workspace_id
        if before.campaigns.get(campaign_id, 0) >= campaign.slots:
            for sibling_id, sibling in tree.campaigns.items():
                hungry = waiting.get(sibling_id, 0) > 0 and after.campaigns.get(sibling_id, 0) < sibling.slots
                if sibling_id != campaign_id and sibling.workspace_id == workspace_id and hungry:
                    assert admit(tree, after, waiting, sibling_id) is None
        if before.workspaces.get(workspace_id, 0) >= tree.workspaces[workspace_id].slots:
            by_workspace = workspace_waiting(tree, waiting)
            others = sum(claim(w.slots, after.workspaces.get(w_id, 0), by_workspace[w_id])
                         for w_id, w in tree.workspaces.items() if w_id != workspace_id)
            assert tree.total - after.organisation >= others

    @precondition(lambda self: self.model.leases)
    @rule(data=st.data())
    def acquire_a_held_call_again(self, data):
        call_id = data.draw(st.sampled_from(sorted(self.model.leases)))
        lease = self.model.leases[call_id]
        result = slots.acquire(ORG, lease.campaign_id, call_id, now_ms=self.now)
        assert (result.token, result.expires_at_ms, result.reacquired) == (lease.token, lease.expires_at_ms, True)

    @precondition(lambda self: self.model.leases)
    @rule(data=st.data())
    def release(self, data):
        call_id = data.draw(st.sampled_from(sorted(self.model.leases)))
        token = self.model.leases[call_id].token
        assert slots.release(ORG, call_id, token) is True
        assert self.model.release(call_id, token)
        self.released.append((call_id, token))

    @precondition(lambda self: self.released or self.model.leases)
    @rule(data=st.data(), extend_ms=st.integers(1, LEASE_MS))
    def stale_tokens_change_nothing(self, data, extend_ms):
        stale = list(self.released) + [(c, lease.token - 1) for c, lease in self.model.leases.items()]
        call_id, token = data.draw(st.sampled_from(sorted(stale)))
        assert slots.release(ORG, call_id, token) is False
        assert slots.renew(ORG, call_id, token, self.now + extend_ms) is False

    @precondition(lambda self: self.live_leases())
    @rule(data=st.data(), extend_ms=st.integers(1, LEASE_MS))
    def renew(self, data, extend_ms):
        call_id = data.draw(st.sampled_from(self.live_leases()))
        token = self.model.leases[call_id].token
        assert slots.renew(ORG, call_id, token, self.now + extend_ms) is True
        self.model.renew(call_id, token, self.now + extend_ms)

    @rule(ms=st.one_of(st.integers(1, LEASE_MS // 10), st.integers(1, LEASE_MS)))
    def time_passes(self, ms):
        self.now += ms

    @rule()
    def reap_everything_expired(self):
        expected = self.model.expired(self.now)
        report = slots.reap_expired(ORG, lambda call_id: False, now_ms=self.now)
        assert (sorted(report.freed), report.renewed) == (expected, [])
        for call_id in expected:
            self.model.release(call_id, self.model.leases[call_id].token)

    @rule(data=st.data())
    def dispatcher_round(self, data):
        for campaign_id in data.draw(st.permutations(sorted(self.model.tree.campaigns))):
            self.acquire_one(campaign_id)

    @rule(waiting=st.dictionaries(st.integers(1, 6), st.integers(0, 6), max_size=6))
    def dispatcher_reports_waiting_work(self, waiting):
        slots.set_waiting(ORG, waiting)
        self.model.waiting = {c: n for c, n in waiting.items() if n > 0 and c in self.model.tree.campaigns}

    @rule(data=st.data(), slots_=st.integers(0, 5), soft=st.booleans())
    def allocation_changes(self, data, slots_, soft):
        tree = self.model.tree
        target = data.draw(st.sampled_from(["total"] + [f"w{w}" for w in tree.workspaces]
                                           + [f"c{c}" for c in tree.campaigns]))
        if target == "total":
            tree = AllocationTree(slots_ * 2, tree.workspaces, tree.campaigns)
        elif target[0] == "w":
            tree = AllocationTree(tree.total, {**tree.workspaces, int(target[1:]): Allocation(slots_, soft)},
                                  tree.campaigns)
        else:
            campaign_id = int(target[1:])
            moved = CampaignAllocation(tree.campaigns[campaign_id].workspace_id, max(1, slots_), soft)
            tree = AllocationTree(tree.total, tree.workspaces, {**tree.campaigns, campaign_id: moved})
        slots.write_allocations(ORG, tree)
        self.model.tree = tree

    @invariant()
    def usage_matches_the_model(self):
        if not hasattr(self, "model"):
            return
        expected = self.model.occupancy(self.now)
        readout = slots.usage(ORG, now_ms=self.now)
        assert readout["organisation"]["used"] == expected.organisation
        assert {w: n["used"] for w, n in readout["workspaces"].items()} == {
            w: expected.workspaces.get(w, 0) for w in self.model.tree.workspaces}
        assert {c: n["used"] for c, n in readout["campaigns"].items()} == {
            c: expected.campaigns.get(c, 0) for c in self.model.tree.campaigns}

    @invariant()
    def lease_sets_match_the_model(self):
        if not hasattr(self, "model"):
            return
        records = self.redis.hgetall(keys.lease_records(ORG))
        assert set(records) == set(self.model.leases)
        live = {call_id for call_id, lease in self.model.leases.items() if not lease.pruned}
        assert set(self.redis.zrange(keys.organisation_leases(ORG), 0, -1)) == live
        assert set(self.redis.zrange(keys.expired_leases(ORG), 0, -1)) == set(self.model.leases) - live
        for call_id, lease in self.model.leases.items():
            in_sets = [self.redis.zscore(key, call_id) for key in (
                keys.organisation_leases(ORG), keys.workspace_leases(ORG, lease.workspace_id),
                keys.campaign_leases(ORG, lease.campaign_id))]
            assert in_sets == [None if lease.pruned else lease.expires_at_ms] * 3
            assert records[call_id] == f"{lease.token} {lease.expires_at_ms} {lease.campaign_id} {lease.workspace_id}"

    @invariant()
    def waiting_work_and_claims_match_the_model(self):
        if not hasattr(self, "model"):
            return
        tree, occupancy, waiting = self.model.tree, self.model.occupancy(), self.model.waiting
        by_workspace = workspace_waiting(tree, waiting)
        expected = {}
        for campaign_id, campaign in tree.campaigns.items():
            expected[f"c:{campaign_id}"] = claim(campaign.slots, occupancy.campaigns.get(campaign_id, 0),
                                                 waiting.get(campaign_id, 0))
            expected[f"W:{campaign.workspace_id}"] = expected.get(f"W:{campaign.workspace_id}", 0) + expected[f"c:{campaign_id}"]
        for workspace_id, workspace in tree.workspaces.items():
            expected[f"w:{workspace_id}"] = claim(workspace.slots, occupancy.workspaces.get(workspace_id, 0),
                                                  by_workspace[workspace_id])
            expected["O"] = expected.get("O", 0) + expected[f"w:{workspace_id}"]
        expected_waiting = {f"c:{c}": n for c, n in waiting.items() if c in tree.campaigns}
        expected_waiting.update({f"w:{w}": n for w, n in by_workspace.items()})
        assert slots.claim_figures(ORG) == ({f: v for f, v in expected_waiting.items() if v},
                                            {f: v for f, v in expected.items() if v})


def test_lua_scripts_and_reference_model_agree_on_every_step():
    run_state_machine_as_test(SlotMachine, settings=settings(
        max_examples=80, stateful_step_count=40, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    ))
