"""Property tests of the pure admission rule (dialer.slot_model)."""
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.slot_model import (
    Allocation, AllocationTree, CampaignAllocation, Denial, Occupancy, admit, claim, within_platform_limits,
)


def tree_of(total, workspaces, campaigns):
    return AllocationTree(
        total,
        {w: Allocation(slots, soft) for w, (slots, soft) in workspaces.items()},
        {c: CampaignAllocation(w, slots, soft) for c, (w, slots, soft) in campaigns.items()},
    )


def occupancy_of(tree, campaign_used):
    workspaces = {}
    for campaign_id, used in campaign_used.items():
        workspace_id = tree.campaigns[campaign_id].workspace_id
        workspaces[workspace_id] = workspaces.get(workspace_id, 0) + used
    return Occupancy(sum(campaign_used.values()), workspaces, campaign_used)


@st.composite
def scenarios(draw):
    workspace_ids = range(1, draw(st.integers(1, 3)) + 1)
    workspaces = {w: (draw(st.integers(0, 6)), draw(st.booleans())) for w in workspace_ids}
    campaigns, next_id = {}, 1
    for w in workspace_ids:
        for _ in range(draw(st.integers(1, 3))):
            campaigns[next_id] = (w, draw(st.integers(1, 5)), draw(st.booleans()))
            next_id += 1
    tree = tree_of(draw(st.integers(1, 12)), workspaces, campaigns)
    used = {c: draw(st.integers(0, 6)) for c in campaigns}
    waiting = {c: draw(st.integers(0, 4)) for c in campaigns}
    return tree, used, waiting, draw(st.sampled_from(sorted(campaigns)))


def test_claim_is_waiting_work_bounded_by_unused_allocation():
    assert claim(5, 2, 10) == 3
    assert claim(5, 2, 1) == 1
    assert claim(5, 7, 3) == 0
    assert claim(5, 0, 0) == 0


def test_worked_example_borrows_from_a_soft_workspace_but_not_a_hard_one():
    campaigns = {11: (1, 2, True), 12: (1, 4, False), 21: (2, 4, False)}
    used, waiting = {11: 2, 12: 1, 21: 0}, {12: 5, 21: 1}
    soft = tree_of(10, {1: (6, True), 2: (4, False)}, campaigns)
    hard = tree_of(10, {1: (6, False), 2: (4, False)}, campaigns)
    assert admit(soft, occupancy_of(soft, used), waiting, 11) is None
    assert admit(hard, occupancy_of(hard, used), waiting, 11) == Denial.CAMPAIGN_SIBLINGS_WAITING


def test_unknown_campaign_is_refused():
    tree = tree_of(5, {1: (5, True)}, {1: (1, 5, True)})
    assert admit(tree, occupancy_of(tree, {1: 0}), {}, 2) == Denial.UNKNOWN_CAMPAIGN


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_an_admission_never_exceeds_a_hard_cap_or_the_total(scenario):
    tree, used, waiting, campaign_id = scenario
    occupancy = occupancy_of(tree, used)
    if admit(tree, occupancy, waiting, campaign_id) is None:
        campaign = tree.campaigns[campaign_id]
        workspace = tree.workspaces[campaign.workspace_id]
        assert occupancy.organisation + 1 <= tree.total
        assert campaign.soft or used[campaign_id] + 1 <= campaign.slots
        assert workspace.soft or occupancy.workspaces.get(campaign.workspace_id, 0) + 1 <= workspace.slots


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_a_campaign_within_its_allocation_is_refused_only_by_its_parents(scenario):
    tree, used, waiting, campaign_id = scenario
    if used[campaign_id] < tree.campaigns[campaign_id].slots:
        assert admit(tree, occupancy_of(tree, used), waiting, campaign_id) not in (
            Denial.CAMPAIGN_FULL, Denial.CAMPAIGN_SIBLINGS_WAITING)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_borrowing_leaves_every_hungry_sibling_campaign_admissible(scenario):
    tree, used, waiting, campaign_id = scenario
    campaign = tree.campaigns[campaign_id]
    if used[campaign_id] < campaign.slots or admit(tree, occupancy_of(tree, used), waiting, campaign_id) is not None:
        return
    after = {**used, campaign_id: used[campaign_id] + 1}
    for sibling_id, sibling in tree.campaigns.items():
        hungry = waiting.get(sibling_id, 0) > 0 and used[sibling_id] < sibling.slots
        if sibling_id != campaign_id and sibling.workspace_id == campaign.workspace_id and hungry:
            assert admit(tree, occupancy_of(tree, after), waiting, sibling_id) is None


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_refusing_to_lend_means_some_sibling_is_below_allocation_with_work_waiting(scenario):
    tree, used, waiting, campaign_id = scenario
    denial = admit(tree, occupancy_of(tree, used), waiting, campaign_id)
    campaign = tree.campaigns[campaign_id]
    if denial == Denial.CAMPAIGN_SIBLINGS_WAITING:
        assert any(waiting.get(s, 0) > 0 and used[s] < other.slots for s, other in tree.campaigns.items()
                   if s != campaign_id and other.workspace_id == campaign.workspace_id)
    if denial == Denial.WORKSPACE_SIBLINGS_WAITING:
        occupancy = occupancy_of(tree, used)
        assert any(
            any(waiting.get(c, 0) > 0 for c, a in tree.campaigns.items() if a.workspace_id == w)
            and occupancy.workspaces.get(w, 0) < other.slots
            for w, other in tree.workspaces.items() if w != campaign.workspace_id)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_with_no_work_waiting_a_soft_campaign_borrows_any_idle_capacity_it_can_reach(scenario):
    tree, used, _, campaign_id = scenario
    campaign = tree.campaigns[campaign_id]
    workspace = tree.workspaces[campaign.workspace_id]
    occupancy = occupancy_of(tree, used)
    workspace_used = occupancy.workspaces.get(campaign.workspace_id, 0)
    reachable = workspace_used < workspace.slots or workspace.soft
    if campaign.soft and reachable and occupancy.organisation < tree.total:
        assert admit(tree, occupancy, {}, campaign_id) is None


@given(st.lists(st.sampled_from([None, "vapi", "retell"]), max_size=30),
       st.dictionaries(st.sampled_from(["vapi", "retell"]), st.integers(0, 5)))
def test_a_platform_never_takes_more_than_its_room_and_others_are_never_held(platforms, free):
    kept = within_platform_limits(platforms, free)
    for platform in ("vapi", "retell"):
        taken = sum(k for p, k in zip(platforms, kept) if p == platform)
        if platform in free:
            assert taken == min(free[platform], platforms.count(platform))
        else:
            assert taken == platforms.count(platform)
    assert all(k for p, k in zip(platforms, kept) if p is None)
