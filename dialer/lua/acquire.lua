-- acquire: admit one call for a campaign and lease its slot at every level, or refuse it.
-- KEYS[1..8], ARGV[1..2]: see _shared.lua.
-- ARGV[3] campaign id   ARGV[4] call id   ARGV[5] lease length in ms
-- Returns: {1, token, expiry ms, 0} for a new lease;
--          {1, token, expiry ms, 1} when the call id already holds one (nothing changes);
--          {0, code} refused, code = dialer.slot_model.Denial (1 epoch missing, 2 unknown
--          campaign, 3 organisation full, 4 workspace full, 5 workspace siblings waiting,
--          6 campaign full, 7 campaign siblings waiting).
-- The rule is dialer.slot_model.admit; sibling claims come from the sums in the reserve hash,
-- so the cost does not grow with the number of campaigns.

if redis.call('EXISTS', K_EPOCH) == 0 then return {0, 1} end
local cid, call = ARGV[3], ARGV[4]

local existing = redis.call('HGET', K_LEASES, call)
if existing then
  local token, expiry = parse_lease(existing)
  return {1, tonumber(token), expiry, 1}
end

local now = now_ms()
prune(now)

local config = redis.call('HMGET', K_CFG, 'total', 'c:' .. cid)
if not config[2] then return {0, 2} end
local total = tonumber(config[1])
local c_slots, c_soft, wid = string.match(config[2], '^(%S+) (%S+) (%S+)$')
c_slots, c_soft = tonumber(c_slots), c_soft == '1'
local w_slots, w_soft = workspace_config(wid)
if not w_slots then return {0, 2} end

local org_free = total - redis.call('ZCARD', K_ORG)
if org_free < 1 then return {0, 3} end

local sums = redis.call('HMGET', K_RESERVE, 'O', 'w:' .. wid, 'W:' .. wid, 'c:' .. cid)
local other_workspaces = tonumber(sums[1] or '0') - tonumber(sums[2] or '0')
local w_used = redis.call('ZCARD', workspace_set(wid))
if w_used >= w_slots then
  if not w_soft then return {0, 4} end
  if org_free - 1 < other_workspaces then return {0, 5} end
end

if redis.call('ZCARD', campaign_set(cid)) >= c_slots then
  if not c_soft then return {0, 6} end
  local room = w_slots - w_used
  if w_soft then room = math.min(org_free, math.max(room, org_free - other_workspaces)) end
  local siblings = tonumber(sums[3] or '0') - tonumber(sums[4] or '0')
  if room - 1 < siblings then return {0, 7} end
end

local token = redis.call('INCR', K_FENCE)
local expiry = now + tonumber(ARGV[5])
occupy(call, expiry, cid, wid)
redis.call('HSET', K_LEASES, call, lease_record(token, expiry, cid, wid))
settle(cid, wid, true)
return {1, token, expiry, 0}
