"""The slot admission rule (docs/product.md §1, Slots), in plain Python: no Redis, no ORM, no clock.

`dialer/lua/acquire.lua` implements the same rule atomically in Redis; the stateful test drives
both side by side. `SlotModel` mirrors the whole Redis state (leases, expiry, pruning, waiting
work) so the test can compare every decision and every readout.

Rule, checked organisation → workspace → campaign; the first level that refuses names the reason:
1. deny if used + 1 exceeds a hard cap (the organisation total is always hard);
2. admit at that level if used < own allocation;
3. a soft node at or over its allocation borrows only if its parent's free capacity minus 1 is
   still at least the sum, over its siblings with waiting work, of min(waiting, allocation − used).

"Parent's free capacity": for a workspace, the organisation's total − used. For a campaign, what
its workspace can still take: allocation − used when the workspace is hard; when it is soft, also
what the workspace may itself borrow from the organisation under rule 3 — a soft campaign in a
soft workspace reaches the organisation's idle capacity (docs/product.md §1: "other workspaces' or campaigns'
unused allocations"). A workspace's waiting work is the sum over its campaigns.
"""
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Mapping


class Denial(IntEnum):
    """Why a call was not admitted; the values are the codes `acquire.lua` returns."""

    EPOCH_MISSING = 1  # Redis lost its leases; admission waits for rebuild_leases
    UNKNOWN_CAMPAIGN = 2  # no allocation synced for the campaign (or its workspace)
    ORGANISATION_FULL = 3
    WORKSPACE_FULL = 4  # hard workspace at its allocation
    WORKSPACE_SIBLINGS_WAITING = 5  # soft workspace may not borrow: other workspaces need the room
    CAMPAIGN_FULL = 6  # hard campaign at its allocation
    CAMPAIGN_SIBLINGS_WAITING = 7  # soft campaign may not borrow: sibling campaigns need the room


@dataclass(frozen=True)
class Allocation:
    slots: int
    soft: bool


@dataclass(frozen=True)
class CampaignAllocation:
    workspace_id: int
    slots: int
    soft: bool


@dataclass(frozen=True)
class AllocationTree:
    """Organisation total, workspace allocations and campaign allocations, by id."""

    total: int
    workspaces: Mapping[int, Allocation]
    campaigns: Mapping[int, CampaignAllocation]


@dataclass(frozen=True)
class Occupancy:
    """Live calls at each node (absent ids hold none)."""

    organisation: int
    workspaces: Mapping[int, int]
    campaigns: Mapping[int, int]


def claim(allocation, used, waiting):
    """Slots a node may still claim back from its parent: min(waiting, allocation − used), ≥ 0.

    >>> claim(5, 2, 10), claim(5, 2, 1), claim(5, 7, 3), claim(5, 0, 0)
    (3, 1, 0, 0)
    """
    return max(0, min(waiting, allocation - used))


def workspace_waiting(tree, campaign_waiting):
    """Waiting work per workspace: the sum over its campaigns (unknown campaigns ignored)."""
    totals = {workspace_id: 0 for workspace_id in tree.workspaces}
    for campaign_id, waiting in campaign_waiting.items():
        campaign = tree.campaigns.get(campaign_id)
        if campaign is not None and campaign.workspace_id in totals:
            totals[campaign.workspace_id] += waiting
    return totals


def admit(tree, occupancy, campaign_waiting, campaign_id):
    """None if one more call for `campaign_id` may start now, else the `Denial` that stops it.

    Worked example: total 10; workspace 1 soft 6 with campaigns 11 (soft 2) and 12 (hard 4);
    workspace 2 hard 4 with campaign 21 (hard 4). Campaign 11 runs 2 calls, 12 runs 1 and has
    5 waiting, 21 runs 0 and has 1 waiting. A third call for 11 borrows: workspace 1 (3 used)
    can still take min(10 − 3, max(6 − 3, 7 − 1)) = 6, and 6 − 1 ≥ claim of 12 = min(5, 3) = 3:
    admitted. Were workspace 1 hard, its room would be 6 − 3 = 3, and 3 − 1 < 3:
    CAMPAIGN_SIBLINGS_WAITING (campaign 12 is below its allocation with work waiting).
    """
    campaign = tree.campaigns.get(campaign_id)
    if campaign is None or campaign.workspace_id not in tree.workspaces:
        return Denial.UNKNOWN_CAMPAIGN
    workspace_id = campaign.workspace_id
    workspace = tree.workspaces[workspace_id]

    organisation_free = tree.total - occupancy.organisation
    if organisation_free < 1:
        return Denial.ORGANISATION_FULL

    workspace_used = occupancy.workspaces.get(workspace_id, 0)
    waiting_by_workspace = workspace_waiting(tree, campaign_waiting)
    other_workspaces_claim = sum(
        claim(other.slots, occupancy.workspaces.get(other_id, 0), waiting_by_workspace[other_id])
        for other_id, other in tree.workspaces.items() if other_id != workspace_id
    )
    if workspace_used >= workspace.slots:
        if not workspace.soft:
            return Denial.WORKSPACE_FULL
        if organisation_free - 1 < other_workspaces_claim:
            return Denial.WORKSPACE_SIBLINGS_WAITING

    campaign_used = occupancy.campaigns.get(campaign_id, 0)
    if campaign_used >= campaign.slots:
        if not campaign.soft:
            return Denial.CAMPAIGN_FULL
        room = workspace.slots - workspace_used
        if workspace.soft:
            room = min(organisation_free, max(room, organisation_free - other_workspaces_claim))
        sibling_claim = sum(
            claim(other.slots, occupancy.campaigns.get(other_id, 0), campaign_waiting.get(other_id, 0))
            for other_id, other in tree.campaigns.items()
            if other.workspace_id == workspace_id and other_id != campaign_id
        )
        if room - 1 < sibling_claim:
            return Denial.CAMPAIGN_SIBLINGS_WAITING
    return None


@dataclass
class ModelLease:
    campaign_id: int
    workspace_id: int
    token: int
    expires_at_ms: int
    pruned: bool = False


@dataclass
class SlotModel:
    """Pure mirror of one organisation's slot state in Redis, for the stateful test.

    Like the scripts: an acquire first prunes every lease whose expiry is at or before `now`
    (it stays known, for the reaper), admits by `admit`, and consumes one unit of the
    campaign's waiting work; renewing a pruned lease occupies its slot again.
    """

    tree: AllocationTree
    waiting: dict = field(default_factory=dict)
    leases: dict = field(default_factory=dict)

    def occupancy(self, now_ms=None):
        """Occupancy of unpruned leases (and, given `now_ms`, only those not yet expired)."""
        campaigns, workspaces, organisation = {}, {}, 0
        for lease in self.leases.values():
            if lease.pruned or (now_ms is not None and lease.expires_at_ms <= now_ms):
                continue
            organisation += 1
            campaigns[lease.campaign_id] = campaigns.get(lease.campaign_id, 0) + 1
            workspaces[lease.workspace_id] = workspaces.get(lease.workspace_id, 0) + 1
        return Occupancy(organisation, workspaces, campaigns)

    def prune(self, now_ms):
        for lease in self.leases.values():
            if lease.expires_at_ms <= now_ms:
                lease.pruned = True

    def acquire(self, campaign_id, call_id, token, now_ms, lease_ms):
        """Mirror of acquire.lua: the existing lease, or the denial, or the new lease."""
        if call_id in self.leases:
            return self.leases[call_id]
        self.prune(now_ms)
        denial = admit(self.tree, self.occupancy(), self.waiting, campaign_id)
        if denial is not None:
            return denial
        workspace_id = self.tree.campaigns[campaign_id].workspace_id
        lease = ModelLease(campaign_id, workspace_id, token, now_ms + lease_ms)
        self.leases[call_id] = lease
        if self.waiting.get(campaign_id, 0) > 0:
            self.waiting[campaign_id] -= 1
        return lease

    def release(self, call_id, token):
        lease = self.leases.get(call_id)
        if lease is None or lease.token != token:
            return False
        del self.leases[call_id]
        return True

    def renew(self, call_id, token, until_ms):
        lease = self.leases.get(call_id)
        if lease is None or lease.token != token:
            return False
        lease.expires_at_ms = until_ms
        lease.pruned = False
        return True

    def expired(self, now_ms):
        return sorted(call_id for call_id, lease in self.leases.items()
                      if lease.pruned or lease.expires_at_ms <= now_ms)


def within_platform_limits(platforms_in_order, free):
    """Which candidates, in admission order, fit their agent platform's concurrency: a platform with
    a limit (`free`: its limit minus its live calls) takes candidates while it has room; a candidate
    of no limited platform (None, or a platform absent from `free`) always fits.

    >>> within_platform_limits([("w1", "vapi"), None, ("w1", "vapi"), ("w1", "vapi")], {("w1", "vapi"): 2})
    [True, True, True, False]
    >>> within_platform_limits([("w1", "retell")], {("w1", "retell"): 0})
    [False]
    """
    room = dict(free)
    kept = []
    for platform in platforms_in_order:
        if platform is None or platform not in room:
            kept.append(True)
        elif room[platform] > 0:
            room[platform] -= 1
            kept.append(True)
        else:
            kept.append(False)
    return kept
