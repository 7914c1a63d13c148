"""Slot leases in Redis: who may start one more call, and which live calls hold slots.

The admission rule is `dialer.slot_model.admit` (docs/product.md §1, Slots); `lua/acquire.lua`
applies it atomically and leases the call id at organisation, workspace and campaign level in
sorted sets scored by expiry (occupancy is membership). Key layout: `dialer/keys.py`.

How the dispatcher calls this module, for organisation `org_id`:

1. At the start of every run: `sync_allocations(org_id)`. It reads the allocation tree from
   PostgreSQL (3 small queries) and rewrites it in Redis only when it changed; when Redis lost
   its data (no epoch) it first runs `rebuild_leases(org_id)`. Then
   `set_waiting(org_id, {campaign_id: eligible waiting tasks})`: the complete figure for every
   campaign (absent = nothing waiting). A count capped at the campaign's allocation is exact
   enough: a campaign claims at most allocation − used from its parent.
2. Admission: `acquire(org_id, campaign_id, call_id) -> Lease | Denied`, or in bulk
   `acquire_many(org_id, [(campaign_id, call_id), ...]) -> [Lease | Denied, ...]` (one pipeline,
   results in order). Each admission consumes one unit of its campaign's waiting work. Store
   `lease.token` on the call row (`Call.lease_token`); the same call id acquired again returns
   the existing lease (`reacquired=True`). `Denied.reason` is a `Denial`; on
   `Denial.EPOCH_MISSING` run `rebuild_leases(org_id)` before admitting anything.
3. When a call ends: `release(org_id, call_id, token) -> bool`; to extend a long call:
   `renew(org_id, call_id, token, until_ms) -> bool`. Both are idempotent and fenced: a token
   that is not the lease's own changes nothing and returns False.
4. Reaper (beat): for each of `organisations_with_leases()` (tracked as leases are acquired;
   `forget_organisation_if_leaseless` once none is left), `reap_expired(org_id, decide)`, where `decide(call_id) -> bool` says whether
   the call is still live (renewed for another lease period) or over (its lease freed).
   `expired_leases(org_id)` lists the candidates without acting.
5. Readout for GET /api/v1/slots and the dashboard: `usage(org_id) -> dict`.

Cost: a sibling's claim on its parent, min(waiting, allocation − used), is kept per node with
running sums per parent (each node hash's `children`); acquire and release update only their own
campaign and workspace, so an admission costs the same with 1,000 campaigns as with one.
`set_waiting` re-derives, in one script, the claims of the campaigns given waiting work now or
at the previous call (once per dispatcher run); a changed tree re-derives every claim. Config changes (allocation or total lowered below use, a mode switched)
apply at the next admission: a node over a lowered cap admits nothing until calls end.
"""
import hashlib
import json
import logging
from enum import IntEnum
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from redis.exceptions import NoScriptError

from config.prepared import PreparedStatement
from config.redis_client import get_redis
from config.redis_scripts import ScriptSet
from dialer import keys
from dialer.slot_model import Allocation, AllocationTree, CampaignAllocation, Denial

LUA_DIR = Path(__file__).resolve().parent / "lua"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lease:
    call_id: str
    token: int
    expires_at_ms: int
    reacquired: bool = False
    admitted = True


@dataclass(frozen=True)
class Denied:
    reason: Denial
    admitted = False


@dataclass(frozen=True)
class ReapReport:
    renewed: list
    freed: list


SCRIPT_NAMES = ("acquire", "release", "renew", "configure", "set_waiting", "restore", "usage", "headroom")
_scripts = ScriptSet(LUA_DIR, SCRIPT_NAMES)


def _script_call(name, organisation_id, now_ms):
    """The start of an EVALSHA of a slot script: the SHA1, KEYS[1] and ARGV[1..2] as `_shared.lua`
    describes. The script's own arguments follow it; built once per batch, not per call."""
    return _scripts.command(name, [keys.organisation_leases(organisation_id)],
                            [keys.node_prefix(organisation_id), "" if now_ms is None else int(now_ms)])


def _run(name, organisation_id, *args, now_ms=None):
    client = get_redis()
    call = _script_call(name, organisation_id, now_ms)
    try:
        return client.execute_command(*call, *args)
    except NoScriptError:
        _scripts.load(client)
        return client.execute_command(*call, *args)


def _run_many(name, organisation_id, arg_lists, now_ms=None):
    """`_run` for each argument list, in one pipeline; replies in order."""
    call = _script_call(name, organisation_id, now_ms)
    return _scripts.run_many(get_redis(), [(*call, *args) for args in arg_lists])


def _lease_ms():
    return settings.SLOT_LEASE_SECONDS * 1000


def _acquire_result(call_id, reply):
    if reply[0] == 1:
        return Lease(call_id=call_id, token=reply[1], expires_at_ms=reply[2], reacquired=reply[3] == 1)
    return Denied(Denial(reply[1]))


def acquire(organisation_id, campaign_id, call_id, now_ms=None):
    """Admit one call for `campaign_id` and lease its slots, or say why not. One EVALSHA."""
    call_id = str(call_id)
    reply = _run("acquire", organisation_id, campaign_id, call_id, _lease_ms(), now_ms=now_ms)
    result = _acquire_result(call_id, reply)
    if result.admitted:
        _track_organisation(organisation_id)
    return result


def acquire_many(organisation_id, candidates, now_ms=None):
    """`acquire` for each (campaign_id, call_id) in order, in one pipeline; results in order."""
    call_ids = [str(call_id) for _, call_id in candidates]
    lease_ms = _lease_ms()
    replies = _run_many("acquire", organisation_id, [
        (campaign_id, call_id, lease_ms) for (campaign_id, _), call_id in zip(candidates, call_ids)], now_ms=now_ms)
    results = [_acquire_result(call_id, reply) for call_id, reply in zip(call_ids, replies)]
    if any(result.admitted for result in results):
        _track_organisation(organisation_id)
    return results


def _track_organisation(organisation_id):
    """Remember that the organisation holds leases, for the reaper. Always after the lease is
    written, so `forget_organisation_if_leaseless` never forgets an organisation it cannot see."""
    get_redis().sadd(keys.ORGANISATIONS_WITH_LEASES, organisation_id)


def organisations_with_leases():
    """The organisation ids given a lease since the reaper last found them without any."""
    return {int(organisation_id) for organisation_id in get_redis().smembers(keys.ORGANISATIONS_WITH_LEASES)}


def forget_organisation_if_leaseless(organisation_id):
    """Stop tracking an organisation that holds no lease record (live or expired). A lease acquired
    meanwhile is caught by the second look, or tracks itself again after it."""
    client = get_redis()
    if client.hlen(keys.lease_records(organisation_id)):
        return False
    client.srem(keys.ORGANISATIONS_WITH_LEASES, organisation_id)
    if client.hlen(keys.lease_records(organisation_id)):
        _track_organisation(organisation_id)
        return False
    return True


class LeaseReply(IntEnum):
    """What release.lua and renew.lua answer."""

    DONE = 1
    NO_LEASE = 0  # already freed: a repeated release is a no-op
    STALE_TOKEN = -1  # the lease is another admission's: the caller's token is out of date


def _lease_changed(organisation_id, call_id, reply, verb):
    reply = LeaseReply(reply)
    if reply is LeaseReply.STALE_TOKEN:
        # Fencing did its job, but a caller holding an old token is worth knowing about.
        logger.warning("stale %s of call %s in organisation %s: the lease holds another token", verb, call_id,
                       organisation_id)
    return reply is LeaseReply.DONE


def release(organisation_id, call_id, token):
    """Free the call's lease if `token` is its own. True when this call freed it."""
    return _lease_changed(organisation_id, call_id, _run("release", organisation_id, str(call_id), int(token)),
                          "release")


def release_many(organisation_id, leases):
    """`release` for each (call_id, token), in one pipeline; a bool per lease, in order."""
    leases = [(str(call_id), int(token)) for call_id, token in leases]
    replies = _run_many("release", organisation_id, leases)
    return [_lease_changed(organisation_id, call_id, reply, "release") for (call_id, _), reply in zip(leases, replies)]


def renew(organisation_id, call_id, token, until_ms):
    """Move the lease's expiry to `until_ms` if `token` is its own. True when renewed."""
    return _lease_changed(organisation_id, call_id,
                          _run("renew", organisation_id, str(call_id), int(token), int(until_ms)), "renew")


# Part of every tree's digest: raising it when the scripts' key layout changes makes the first
# dispatcher run after a deploy rewrite the tree in the new layout.
KEY_LAYOUT = 2


def tree_version(tree):
    """A stable digest of an allocation tree (and the key layout), to skip rewriting an unchanged one."""
    canonical = [
        KEY_LAYOUT,
        tree.total,
        sorted((w, a.slots, a.soft) for w, a in tree.workspaces.items()),
        sorted((c, a.workspace_id, a.slots, a.soft) for c, a in tree.campaigns.items()),
    ]
    return hashlib.sha1(json.dumps(canonical).encode()).hexdigest()


def write_allocations(organisation_id, tree):
    """Replace the organisation's allocation tree in Redis (one script, atomic)."""
    fields = []
    for workspace_id, allocation in tree.workspaces.items():
        fields += [f"w:{workspace_id}", f"{allocation.slots} {int(allocation.soft)}"]
    for campaign_id, allocation in tree.campaigns.items():
        fields += [f"c:{campaign_id}", f"{allocation.slots} {int(allocation.soft)} {allocation.workspace_id}"]
    _run("configure", organisation_id, tree.total, tree_version(tree), *fields)


# The organisation's total, its workspaces and its campaigns not completed or archived, in one
# round trip: every dispatcher pass reads it (`sync_allocations`).
ALLOCATION_TREE = PreparedStatement("""
SELECT 'o', o.id, NULL::bigint, o.total_slots, NULL::varchar FROM campaigns_organisation o WHERE o.id = %(organisation)s::bigint
UNION ALL
SELECT 'w', w.id, NULL::bigint, w.slots, w.slot_mode FROM campaigns_workspace w WHERE w.organisation_id = %(organisation)s
UNION ALL
SELECT 'c', c.id, c.workspace_id, c.slots, c.slot_mode
FROM campaigns_campaign c JOIN campaigns_workspace w ON w.id = c.workspace_id
WHERE w.organisation_id = %(organisation)s AND c.status NOT IN ('completed', 'archived')
""")


def allocation_tree(organisation_id):
    """The organisation's allocation tree as PostgreSQL holds it (campaigns not completed or archived)."""
    from django.db import connection

    from campaigns.models import Organisation, SlotMode

    with connection.cursor() as cursor:
        ALLOCATION_TREE.execute(cursor, {"organisation": organisation_id})
        rows = cursor.fetchall()
    total, workspaces, campaigns = None, {}, {}
    for node, node_id, workspace_id, node_slots, mode in rows:
        if node == "o":
            total = node_slots
        elif node == "w":
            workspaces[node_id] = Allocation(node_slots, mode == SlotMode.SOFT)
        else:
            campaigns[node_id] = CampaignAllocation(workspace_id, node_slots, mode == SlotMode.SOFT)
    if total is None:
        raise Organisation.DoesNotExist(f"organisation {organisation_id}")
    return AllocationTree(total, workspaces, campaigns)


def sync_allocations(organisation_id):
    """Bring Redis's allocation tree up to PostgreSQL's; rebuild leases first if Redis lost them.

    Returns True when Redis was written. Cheap when nothing changed: one query and one round trip.
    """
    tree = allocation_tree(organisation_id)
    pipe = get_redis().pipeline(transaction=False)
    pipe.exists(keys.epoch(organisation_id))
    pipe.hget(keys.allocation_config(organisation_id), "version")
    has_epoch, version = pipe.execute()
    if not has_epoch:
        rebuild_leases(organisation_id)
        return True
    if version == tree_version(tree):
        return False
    write_allocations(organisation_id, tree)
    return True


def set_waiting(organisation_id, campaign_waiting):
    """Replace every campaign's eligible waiting work; campaigns not given have none."""
    pairs = []
    for campaign_id, waiting in campaign_waiting.items():
        if waiting > 0:
            pairs += [campaign_id, int(waiting)]
    _run("set_waiting", organisation_id, *pairs)


def usage(organisation_id, now_ms=None):
    """Live use per node: {"organisation": {...}, "workspaces": {id: {...}}, "campaigns": {id: {...}}}.

    Each node: used, allocation, mode ("hard"/"soft"), borrowed = max(0, used − allocation);
    campaigns also carry workspace_id. The organisation's allocation is its total (always hard).
    """
    total, used, workspace_rows, campaign_rows = _run("usage", organisation_id, now_ms=now_ms)

    def node(slots, soft, node_used):
        mode = "soft" if soft else "hard"
        return {"used": node_used, "allocation": slots, "mode": mode, "borrowed": max(0, node_used - slots)}

    workspaces = {
        int(workspace_rows[i]): node(*workspace_rows[i + 1:i + 4]) for i in range(0, len(workspace_rows), 4)
    }
    campaigns = {}
    for i in range(0, len(campaign_rows), 5):
        campaign_id, workspace_id, slots, soft, campaign_used = campaign_rows[i:i + 5]
        campaigns[int(campaign_id)] = {**node(slots, soft, campaign_used), "workspace_id": int(workspace_id)}
    return {"organisation": node(total, 0, used), "workspaces": workspaces, "campaigns": campaigns}


def claim_figures(organisation_id):
    """Waiting work and claims as the scripts keep them, for checks: ({node: waiting}, {node: claim}).

    Nodes are named "c:<id>" and "w:<id>"; claims also hold "W:<workspace id>" (sum of its
    campaigns' claims) and "O" (sum of the workspaces' claims). Zero figures are left out.
    """
    client = get_redis()
    tree_fields = [field for field in client.hkeys(keys.allocation_config(organisation_id)) if field[:2] in ("c:", "w:")]
    pipe = client.pipeline(transaction=False)
    for field in tree_fields:
        kind, node_id = field.split(":", 1)
        key = keys.campaign_node(organisation_id, node_id) if kind == "c" else keys.workspace_node(organisation_id, node_id)
        pipe.hmget(key, "waiting", "claim", "children")
    pipe.hget(keys.organisation_node(organisation_id), "children")
    *nodes, organisation_children = pipe.execute()
    waiting, claims = {}, {"O": int(organisation_children or 0)}
    for field, (node_waiting, node_claim, children) in zip(tree_fields, nodes):
        waiting[field] = int(node_waiting or 0)
        claims[field] = int(node_claim or 0)
        if field.startswith("w:"):
            claims["W:" + field[2:]] = int(children or 0)
    return ({node: n for node, n in waiting.items() if n}, {node: n for node, n in claims.items() if n})


def lease_records(organisation_id):
    """Every lease the organisation holds, expired or not: {call_id: (token, expires_at_ms)}."""
    records = get_redis().hgetall(keys.lease_records(organisation_id))
    parsed = {}
    for call_id, record in records.items():
        token, expires_at_ms = record.split(" ")[:2]
        parsed[call_id] = (int(token), int(expires_at_ms))
    return parsed


@dataclass(frozen=True)
class Headroom:
    """What the dispatcher may claim: `free` calls the organisation could start now, and per
    campaign with room left the calls it could start (`campaigns`, {campaign_id: count})."""
    free: int
    campaigns: dict


def headroom(organisation_id, most_per_campaign, now_ms=None):
    """The organisation's free capacity and each campaign's room, one read (lua/headroom.lua).

    A hard campaign's room is allocation − used; a soft one's the organisation's free capacity;
    each capped by that capacity and `most_per_campaign`; campaigns with none are left out.
    """
    reply = _run("headroom", organisation_id, int(most_per_campaign), now_ms=now_ms)
    return Headroom(free=int(reply[0]),
                    campaigns={int(reply[i]): int(reply[i + 1]) for i in range(1, len(reply), 2)})


def expired_leases(organisation_id, now_ms=None):
    """Call ids whose lease is past expiry (pruned by an acquire or not yet), oldest first."""
    client = get_redis()
    if now_ms is None:
        seconds, micros = client.time()
        now_ms = seconds * 1000 + micros // 1000
    pipe = client.pipeline(transaction=False)
    pipe.zrangebyscore(keys.expired_leases(organisation_id), "-inf", "+inf", withscores=True)
    pipe.zrangebyscore(keys.organisation_leases(organisation_id), "-inf", now_ms, withscores=True)
    pruned, unpruned = pipe.execute()
    return [call_id for call_id, _ in sorted(pruned + unpruned, key=lambda member: member[1])]


def reap_expired(organisation_id, decide, now_ms=None):
    """Hand each expired lease to `decide(call_id)`: True renews it for a lease period, False frees it.

    Fenced like release and renew, so a lease re-acquired meanwhile is left alone.
    """
    client = get_redis()
    if now_ms is None:
        seconds, micros = client.time()
        now_ms = seconds * 1000 + micros // 1000
    call_ids = expired_leases(organisation_id, now_ms=now_ms)
    if not call_ids:
        return ReapReport(renewed=[], freed=[])
    records = client.hmget(keys.lease_records(organisation_id), call_ids)
    renewed, freed = [], []
    for call_id, record in zip(call_ids, records):
        if record is None:
            continue
        token = int(record.split(" ", 1)[0])
        if decide(call_id):
            if renew(organisation_id, call_id, token, now_ms + _lease_ms()):
                renewed.append(call_id)
        elif release(organisation_id, call_id, token):
            freed.append(call_id)
    return ReapReport(renewed=renewed, freed=freed)


def restore_leases(organisation_id, leases, now_ms=None):
    """Lease each (call_id, campaign_id, workspace_id, token or None) afresh and open the epoch.

    Calls that already hold a lease keep it. Returns {call_id: token} for calls given no token.
    """
    args = []
    for call_id, campaign_id, workspace_id, token in leases:
        args += [str(call_id), campaign_id, workspace_id, "" if token is None else int(token)]
    fresh = _run("restore", organisation_id, _lease_ms(), *args, now_ms=now_ms)
    if leases:
        _track_organisation(organisation_id)
    return {fresh[i]: fresh[i + 1] for i in range(0, len(fresh), 2)}


def rebuild_leases(organisation_id=None):
    """Re-create the leases of live calls from PostgreSQL (one organisation, or all) and open the epoch.

    Run after Redis lost its data (see `Denial.EPOCH_MISSING`); safe to repeat. Returns the
    number of live calls per organisation.
    """
    from campaigns.models import Organisation
    from telephony.models import LIVE_CALL_STATUSES, Call

    if organisation_id is None:
        organisation_ids = list(Organisation.objects.values_list("id", flat=True))
    else:
        organisation_ids = [organisation_id]
    restored = {}
    for org_id in organisation_ids:
        write_allocations(org_id, allocation_tree(org_id))
        live = list(
            Call.objects.filter(organisation_id=org_id, status__in=LIVE_CALL_STATUSES)
            .values_list("id", "campaign_id", "campaign__workspace_id", "lease_token")
        )
        fresh = restore_leases(org_id, live)
        # A live call admitted without a stored token gets one now, so it can release its lease.
        for call_id, token in fresh.items():
            Call.objects.filter(id=call_id, lease_token__isnull=True).update(lease_token=token)
        # A call that ended between being read as live and its lease being restored found no
        # lease to release: free the restored leases of calls no longer live.
        release_leases_of_ended_calls(org_id, {str(call_id): fresh.get(str(call_id), token)
                                               for call_id, _, _, token in live})
        restored[org_id] = len(live)
    return restored


def release_leases_of_ended_calls(organisation_id, tokens):
    """Free the leases in `tokens` ({call_id: token}) whose call is not live in PostgreSQL,
    fenced by the tokens (a lease released meanwhile is not touched twice). Returns the call ids
    found not live, in the order given."""
    from telephony.models import LIVE_CALL_STATUSES, Call

    live = {str(call_id) for call_id in Call.objects.filter(id__in=list(tokens), status__in=LIVE_CALL_STATUSES)
            .values_list("id", flat=True)}
    ended = [call_id for call_id in tokens if call_id not in live]
    release_many(organisation_id, [(call_id, tokens[call_id]) for call_id in ended if tokens[call_id] is not None])
    return ended
