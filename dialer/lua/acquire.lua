-- acquire: admit one call for a campaign and lease its slot at every level, or refuse it.
-- KEYS[1], ARGV[1..2]: see _shared.lua.
-- ARGV[3] campaign id   ARGV[4] call id   ARGV[5] lease length in ms
-- Returns: {1, token, expiry ms, 0} for a new lease;
--          {1, token, expiry ms, 1} when the call id already holds one (nothing changes);
--          {0, code} refused, code = dialer.slot_model.Denial (1 epoch missing, 2 unknown
--          campaign, 3 organisation full, 4 workspace full, 5 workspace siblings waiting,
--          6 campaign full, 7 campaign siblings waiting).
-- The rule is dialer.slot_model.admit; sibling claims come from the parents' `children` sums,
-- so the cost does not grow with the number of campaigns.
--- @include _shared

if redis.call('EXISTS', K_EPOCH) == 0 then return {0, 1} end
local cid, call = ARGV[3], ARGV[4]

local existing = redis.call('HGET', K_LEASES, call)
if existing then
  local token, expiry = parse_lease(existing)
  return {1, tonumber(token), expiry, 1}
end

local now = now_ms()
prune(now)

local c = read_campaign(cid)
if not c then return {0, 2} end
local wid = c.workspace
local w = read_workspace(wid)
if not w then return {0, 2} end
local organisation = redis.call('HMGET', K_ORG_NODE, 'slots', 'children')

local org_free = tonumber(organisation[1]) - redis.call('ZCARD', K_ORG)
if org_free < 1 then return {0, 3} end

local other_workspaces = tonumber(organisation[2]) - w.claim
local w_used = redis.call('ZCARD', workspace_set(wid))
if w_used >= w.slots then
  if not w.soft then return {0, 4} end
  if org_free - 1 < other_workspaces then return {0, 5} end
end

local c_used = redis.call('ZCARD', campaign_set(cid))
if c_used >= c.slots then
  if not c.soft then return {0, 6} end
  local room = w.slots - w_used
  if w.soft then room = math.min(org_free, math.max(room, org_free - other_workspaces)) end
  if room - 1 < w.children - c.claim then return {0, 7} end
end

local token = redis.call('INCR', K_FENCE)
local expiry = now + tonumber(ARGV[5])
occupy(call, expiry, cid, wid)
redis.call('HSET', K_LEASES, call, lease_record(token, expiry, cid, wid))
-- The admitted call was waiting work: one unit of it is used up.
local consumed = c.waiting > 0
if consumed then
  c.waiting = c.waiting - 1
  w.waiting = w.waiting - 1
end
settle(cid, wid, c, w, c_used + 1, w_used + 1, consumed)
return {1, token, expiry, 0}
