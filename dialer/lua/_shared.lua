-- Shared prelude of the slot scripts: dialer/slots.py prepends this file to each of them before
-- registering it. Not a script on its own.
--
-- Every slot script takes the same KEYS (built by dialer.keys.slot_script_keys):
--   KEYS[1] cfg hash      KEYS[2] waiting hash   KEYS[3] reserve hash   KEYS[4] leases hash
--   KEYS[5] org lease set KEYS[6] expired set    KEYS[7] fence string   KEYS[8] epoch string
-- and the same first two ARGV:
--   ARGV[1] node prefix: workspace and campaign lease sets are ARGV[1] .. "w:<id>" / "c:<id>"
--           (same hash tag as the KEYS, so one Cluster slot)
--   ARGV[2] now in ms, or "" for Redis TIME
-- Layouts of the values are documented in dialer/keys.py.

local K_CFG, K_WAITING, K_RESERVE, K_LEASES = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_ORG, K_EXPIRED, K_FENCE, K_EPOCH = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local PREFIX = ARGV[1]

-- Expired leases pruned per acquire; any beyond stay counted until a later call, which can only
-- refuse a call, never over-admit one.
local PRUNE_LIMIT = 256

local function now_ms()
  if ARGV[2] ~= '' then return tonumber(ARGV[2]) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function campaign_set(cid) return PREFIX .. 'c:' .. cid end
local function workspace_set(wid) return PREFIX .. 'w:' .. wid end

local function lease_record(token, expiry, cid, wid)
  return string.format('%d %d %s %s', token, expiry, cid, wid)
end

-- token (string), expiry (number), campaign id, workspace id
local function parse_lease(record)
  local token, expiry, cid, wid = string.match(record, '^(%S+) (%S+) (%S+) (%S+)$')
  return token, tonumber(expiry), cid, wid
end

-- slots (number), soft (bool), workspace id; nil when the campaign has no allocation
local function campaign_config(cid)
  local value = redis.call('HGET', K_CFG, 'c:' .. cid)
  if not value then return nil end
  local slots, soft, wid = string.match(value, '^(%S+) (%S+) (%S+)$')
  return tonumber(slots), soft == '1', wid
end

-- slots (number), soft (bool); nil when the workspace has no allocation
local function workspace_config(wid)
  local value = redis.call('HGET', K_CFG, 'w:' .. wid)
  if not value then return nil end
  local slots, soft = string.match(value, '^(%S+) (%S+)$')
  return tonumber(slots), soft == '1'
end

local function claim(slots, used, waiting)
  local free = slots - used
  if waiting < free then free = waiting end
  if free < 0 then return 0 end
  return free
end

-- Re-derive the claims of a campaign and its workspace after their use or waiting work
-- changed, keeping the parents' sums exact: the sums let acquire weigh every sibling without
-- visiting them. With `consume`, one unit of the campaign's waiting work is taken first (an
-- admitted call was waiting work). Costs two reads when neither node has work waiting.
local function settle(cid, wid, consume)
  local c_field, w_field = 'c:' .. cid, 'w:' .. wid
  local waiting = redis.call('HMGET', K_WAITING, c_field, w_field)
  local c_waiting, w_waiting = tonumber(waiting[1] or '0'), tonumber(waiting[2] or '0')
  if consume and c_waiting > 0 then
    c_waiting = redis.call('HINCRBY', K_WAITING, c_field, -1)
    w_waiting = redis.call('HINCRBY', K_WAITING, w_field, -1)
  end
  local old = redis.call('HMGET', K_RESERVE, c_field, w_field)
  local c_old, w_old = tonumber(old[1] or '0'), tonumber(old[2] or '0')
  if c_waiting == 0 and w_waiting == 0 and c_old == 0 and w_old == 0 then return end

  local c_new, w_new = 0, 0
  local c_slots, _, configured_wid = campaign_config(cid)
  if c_slots and configured_wid == wid and c_waiting > 0 then
    c_new = claim(c_slots, redis.call('ZCARD', campaign_set(cid)), c_waiting)
  end
  local w_slots = workspace_config(wid)
  if w_slots and w_waiting > 0 then
    w_new = claim(w_slots, redis.call('ZCARD', workspace_set(wid)), w_waiting)
  end
  if c_new ~= c_old then
    redis.call('HSET', K_RESERVE, c_field, c_new)
    redis.call('HINCRBY', K_RESERVE, 'W:' .. wid, c_new - c_old)
  end
  if w_new ~= w_old then
    redis.call('HSET', K_RESERVE, w_field, w_new)
    redis.call('HINCRBY', K_RESERVE, 'O', w_new - w_old)
  end
end

local function occupy(call, expiry, cid, wid)
  redis.call('ZADD', K_ORG, expiry, call)
  redis.call('ZADD', workspace_set(wid), expiry, call)
  redis.call('ZADD', campaign_set(cid), expiry, call)
end

-- Returns true when the call was in the occupancy sets (false: pruned, or never there).
local function vacate(call, cid, wid)
  if redis.call('ZREM', K_ORG, call) == 0 then return false end
  redis.call('ZREM', workspace_set(wid), call)
  redis.call('ZREM', campaign_set(cid), call)
  return true
end

-- Move leases past expiry out of the occupancy sets into the reaper's set (record kept).
local function prune(now)
  local gone = redis.call('ZRANGEBYSCORE', K_ORG, '-inf', now, 'LIMIT', 0, PRUNE_LIMIT)
  for _, call in ipairs(gone) do
    local record = redis.call('HGET', K_LEASES, call)
    if record then
      local _, expiry, cid, wid = parse_lease(record)
      vacate(call, cid, wid)
      redis.call('ZADD', K_EXPIRED, expiry, call)
      settle(cid, wid, false)
    else
      redis.call('ZREM', K_ORG, call)
    end
  end
end

-- Rebuild every claim and both kinds of sums from cfg, waiting work and the lease sets.
-- Workspace waiting work is re-derived as the sum over its configured campaigns.
local function recompute_claims()
  local config = redis.call('HGETALL', K_CFG)
  local workspaces, campaigns = {}, {}
  for i = 1, #config, 2 do
    local kind, id = string.match(config[i], '^([wc]):(.+)$')
    if kind == 'w' then
      local slots = string.match(config[i + 1], '^(%S+)')
      workspaces[id] = {slots = tonumber(slots), waiting = 0, sum = 0}
    elseif kind == 'c' then
      local slots, _, wid = string.match(config[i + 1], '^(%S+) (%S+) (%S+)$')
      campaigns[id] = {slots = tonumber(slots), wid = wid}
    end
  end
  local waiting = {}
  local entries = redis.call('HGETALL', K_WAITING)
  for i = 1, #entries, 2 do waiting[entries[i]] = tonumber(entries[i + 1]) end

  redis.call('DEL', K_RESERVE)
  redis.call('DEL', K_WAITING)
  for cid, campaign in pairs(campaigns) do
    local workspace = workspaces[campaign.wid]
    local w = waiting['c:' .. cid] or 0
    if workspace and w > 0 then
      redis.call('HSET', K_WAITING, 'c:' .. cid, w)
      workspace.waiting = workspace.waiting + w
      local c = claim(campaign.slots, redis.call('ZCARD', campaign_set(cid)), w)
      if c > 0 then
        redis.call('HSET', K_RESERVE, 'c:' .. cid, c)
        workspace.sum = workspace.sum + c
      end
    end
  end
  local organisation_sum = 0
  for wid, workspace in pairs(workspaces) do
    if workspace.waiting > 0 then
      redis.call('HSET', K_WAITING, 'w:' .. wid, workspace.waiting)
      local c = claim(workspace.slots, redis.call('ZCARD', workspace_set(wid)), workspace.waiting)
      if c > 0 then
        redis.call('HSET', K_RESERVE, 'w:' .. wid, c)
        organisation_sum = organisation_sum + c
      end
    end
    if workspace.sum > 0 then redis.call('HSET', K_RESERVE, 'W:' .. wid, workspace.sum) end
  end
  if organisation_sum > 0 then redis.call('HSET', K_RESERVE, 'O', organisation_sum) end
end

