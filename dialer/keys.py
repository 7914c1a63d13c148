"""Every Redis key name the dialer uses, built in one place.

All keys of one organisation carry the hash tag `{org:<id>}`, so they hash to one Redis Cluster
slot and a Lua script may touch any of them atomically.

Dispatcher (`dialer/dispatch_lock.py`, `dialer/dispatcher.py`): `{org:<id>}:dispatch:lock`,
`:nudged` and `:rerun` strings.

Attempts (`dialer/attempts.py`): `{org:<id>}:not-placed:<task id>` counts a task's consecutive
calls the carrier would not take (its backoff), expiring after a quiet while.

Slot leases (`dialer/slots.py`, scripts in `dialer/lua/`), under `dialer:slots:{org:<id>}:`
- `cfg` hash, the allocation tree as configured: `total` → org total; `version` → hash of the
  tree; `w:<workspace id>` → "<slots> <soft 0|1>"; `c:<campaign id>` → "<slots> <soft 0|1>
  <workspace id>".
- `node:org`, `node:w:<workspace id>`, `node:c:<campaign id>` hashes, what admission reads about
  a node (a few fields each, so every lookup is cheap): `slots`, `soft` (copies of cfg, written
  with it), `workspace` (campaigns), `waiting` (eligible waiting work; a workspace's is the sum
  over its campaigns), `claim` (the node's claim on its parent, min(waiting, allocation − used)
  when positive, else 0) and `children` (workspaces and the organisation: the sum of their
  children's claims).
- `waiting-campaigns` set: the campaigns given waiting work by the last rewrite of the claims
  (a superset of those whose waiting work or claim is not 0).
- `org`, `w:<workspace id>`, `c:<campaign id>` sorted sets: live call ids scored by lease expiry
  (ms). The scripts build every per-node name from `node_prefix` (a script cannot know every
  campaign's key in advance); `workspace_leases`, `campaign_leases`, `workspace_node` and
  `campaign_node` spell the same names.
- `leases` hash: call id → "<token> <expiry ms> <campaign id> <workspace id>".
- `expired` sorted set: leases pruned past expiry, kept (with their record) for the reaper.
- `fence` string: last fencing token handed out. `epoch` string: present while the leases in
  Redis are complete; missing after Redis lost its data, until they are rebuilt.

Wake-up schedule and upkeep: the deployment-wide keys at the end of this module.
"""


def slots_namespace(organisation_id):
    return f"dialer:slots:{{org:{organisation_id}}}"


def node_prefix(organisation_id):
    """The prefix scripts extend with `w:<id>` / `c:<id>` (lease sets) or `node:w:<id>` / `node:c:<id>`."""
    return f"{slots_namespace(organisation_id)}:"


def allocation_config(organisation_id):
    return f"{slots_namespace(organisation_id)}:cfg"


def organisation_node(organisation_id):
    return f"{node_prefix(organisation_id)}node:org"


def workspace_node(organisation_id, workspace_id):
    return f"{node_prefix(organisation_id)}node:w:{workspace_id}"


def campaign_node(organisation_id, campaign_id):
    return f"{node_prefix(organisation_id)}node:c:{campaign_id}"


def lease_records(organisation_id):
    return f"{slots_namespace(organisation_id)}:leases"


def organisation_leases(organisation_id):
    return f"{slots_namespace(organisation_id)}:org"


def workspace_leases(organisation_id, workspace_id):
    return f"{node_prefix(organisation_id)}w:{workspace_id}"


def campaign_leases(organisation_id, campaign_id):
    return f"{node_prefix(organisation_id)}c:{campaign_id}"


def expired_leases(organisation_id):
    return f"{slots_namespace(organisation_id)}:expired"


def fence(organisation_id):
    return f"{slots_namespace(organisation_id)}:fence"


def epoch(organisation_id):
    return f"{slots_namespace(organisation_id)}:epoch"


def dispatch_lock(organisation_id):
    """The organisation's single-flight dispatcher lock (value: the holder's token)."""
    return f"{{org:{organisation_id}}}:dispatch:lock"


def dispatch_nudged(organisation_id):
    """Present while a dispatch job for the organisation is published and not yet started."""
    return f"{{org:{organisation_id}}}:dispatch:nudged"


def dispatch_rerun(organisation_id):
    """Set by a run that found the lock taken: the holder makes one more pass."""
    return f"{{org:{organisation_id}}}:dispatch:rerun"



def held_numbers(organisation_id):
    """Numbers a dispatcher pass held a due task back for while a call to them was in wrap-up: the
    end of a call whose slot was already freed nudges the dispatcher only when its number is here."""
    return f"{{org:{organisation_id}}}:dispatch:held-numbers"


def not_placed_refusals(organisation_id, task_id):
    """How many of the task's recent calls the carrier would not take (429, 5xx, timeout)."""
    return f"{{org:{organisation_id}}}:not-placed:{task_id}"


# Deployment-wide keys (`dialer/wakeups.py`, `dialer/maintenance.py`): one small structure each,
# not per organisation, so beat reads them without knowing any organisation.
WAKEUPS = "dialer:wakeups"
"""Sorted set: organisation id → the earliest instant (epoch ms) it may have something to admit."""
WAKEUPS_BUILT = "dialer:wakeups:built"
"""Present once the wake-up schedule was derived from PostgreSQL; missing after Redis lost its data."""
WAKEUPS_RECONCILED_UP_TO = "dialer:wakeups:reconciled-up-to"
"""The last organisation id the reconciliation pass re-derived; it goes on from there."""
ORGANISATIONS_WITH_LEASES = "dialer:organisations-with-leases"
"""Set: organisations that were given a slot lease and may still hold one, for the reaper."""


def stale_check(call_id):
    """Present for a minute after upkeep asked the carrier about a long-lived call."""
    return f"dialer:stale-check:{call_id}"


# What the dispatcher measures about itself (`dialer/metrics.py`), hashes keyed by organisation id.
METRICS_ADMISSIONS = "metrics:dispatch:admitted"
"""Hash: organisation id → calls admitted."""
METRICS_RUNS = "metrics:dispatch:runs"
"""Hash: organisation id → dispatcher runs."""
METRICS_SECONDS = "metrics:dispatch:seconds"
"""Hash: "<org>:<le>" → runs at or under le seconds; "<org>:sum" → seconds in all."""
