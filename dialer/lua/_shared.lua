-- Shared prelude of the slot scripts, pulled into each by its `--- @include _shared` line
-- (config/redis_scripts.py). Not a script on its own.
--
-- Every slot script takes the same KEYS and first two ARGV (dialer/slots.py `_script_call`):
--   KEYS[1] the organisation's lease set, which routes the call to its Redis Cluster node
--   ARGV[1] key prefix of the organisation (dialer.keys.node_prefix): the other keys are
--           ARGV[1] .. "cfg", "node:org", "leases", "expired", "fence", "epoch", "waiting-campaigns",
--           and per node "w:<id>" / "c:<id>" (lease sets) and "node:w:<id>" / "node:c:<id>"
--           (node hashes).
--           Built here rather than passed as KEYS: a script cannot know every campaign's key in
--           advance, and each argument costs the client time on every call. The prefix carries
--           the organisation's hash tag, so every key is in the one Cluster slot of KEYS[1].
--   ARGV[2] now in ms, or "" for Redis TIME
-- Key names and layouts of the values are documented in dialer/keys.py.
--
-- Admission reads only small per-node hashes: a field lookup in a hash of a few hundred fields
-- (stored as a listpack below hash-max-listpack-entries) is a linear scan, and was most of the
-- cost of an acquire when the claims of every campaign shared one hash.

local PREFIX = ARGV[1]
local K_ORG = KEYS[1]
local K_CFG, K_ORG_NODE, K_LEASES = PREFIX .. 'cfg', PREFIX .. 'node:org', PREFIX .. 'leases'
local K_EXPIRED, K_FENCE, K_EPOCH = PREFIX .. 'expired', PREFIX .. 'fence', PREFIX .. 'epoch'
-- The campaigns given waiting work by the last recompute. Admissions only consume waiting work,
-- and a claim is 0 without it, so every campaign whose waiting work or claim is not 0 is here:
-- set_waiting rewrites these and the newly given ones, not every campaign of the organisation.
local K_WAITING_CAMPAIGNS = PREFIX .. 'waiting-campaigns'

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
local function campaign_node(cid) return PREFIX .. 'node:c:' .. cid end
local function workspace_node(wid) return PREFIX .. 'node:w:' .. wid end

local function lease_record(token, expiry, cid, wid)
  return string.format('%d %d %s %s', token, expiry, cid, wid)
end

-- token (string), expiry (number), campaign id, workspace id
local function parse_lease(record)
  local token, expiry, cid, wid = string.match(record, '^(%S+) (%S+) (%S+) (%S+)$')
  return token, tonumber(expiry), cid, wid
end

local function claim(slots, used, waiting)
  local free = slots - used
  if waiting < free then free = waiting end
  if free < 0 then return 0 end
  return free
end

-- A campaign's node hash as a table: slots, soft, waiting, claim (numbers; soft a bool) and its
-- workspace id; nil when the campaign is not configured.
local function read_campaign(cid)
  local v = redis.call('HMGET', campaign_node(cid), 'slots', 'soft', 'waiting', 'claim', 'workspace')
  if not v[1] then return nil end
  return {slots = tonumber(v[1]), soft = v[2] == '1', waiting = tonumber(v[3]), claim = tonumber(v[4]),
          workspace = v[5]}
end

-- A workspace's node hash: slots, soft, waiting, claim and children (its campaigns' claims).
local function read_workspace(wid)
  local v = redis.call('HMGET', workspace_node(wid), 'slots', 'soft', 'waiting', 'claim', 'children')
  if not v[1] then return nil end
  return {slots = tonumber(v[1]), soft = v[2] == '1', waiting = tonumber(v[3]), claim = tonumber(v[4]),
          children = tonumber(v[5])}
end

-- Re-derive the claims of campaign node `c` and workspace node `w` (as read by read_campaign
-- and read_workspace, waiting work already updated by the caller) after their use or waiting
-- work changed, keeping the parents' `children` sums exact: the sums let acquire weigh every
-- sibling without visiting them. `c_used`/`w_used` are the nodes' use when the caller knows it
-- (nil: counted here). `dirty` says the waiting figures changed and must be written. Writes
-- nothing for nodes with no waiting work and no claim.
local function settle(cid, wid, c, w, c_used, w_used, dirty)
  local c_claim, w_claim = 0, 0
  if c and c.waiting > 0 then
    c_claim = claim(c.slots, c_used or redis.call('ZCARD', campaign_set(cid)), c.waiting)
  end
  if w and w.waiting > 0 then
    w_claim = claim(w.slots, w_used or redis.call('ZCARD', workspace_set(wid)), w.waiting)
  end
  if c and (dirty or c_claim ~= c.claim) then
    redis.call('HSET', campaign_node(cid), 'waiting', c.waiting, 'claim', c_claim)
    if c_claim ~= c.claim then
      if w and c.workspace == wid then
        w.children = w.children + c_claim - c.claim
        dirty = true
      else
        redis.call('HINCRBY', workspace_node(c.workspace), 'children', c_claim - c.claim)
      end
    end
  end
  if w and (dirty or w_claim ~= w.claim) then
    redis.call('HSET', workspace_node(wid), 'waiting', w.waiting, 'claim', w_claim, 'children', w.children)
    if w_claim ~= w.claim then redis.call('HINCRBY', K_ORG_NODE, 'children', w_claim - w.claim) end
  end
end

-- settle after a lease left the occupancy sets (release, prune) or came back (renew).
local function settle_nodes(cid, wid)
  settle(cid, wid, read_campaign(cid), read_workspace(wid), nil, nil, false)
end

-- The score is formatted once, as an integer: Lua would format the number three times with
-- %.14g, which costs more than a ZADD.
local function occupy(call, expiry, cid, wid)
  local score = string.format('%d', expiry)
  redis.call('ZADD', K_ORG, score, call)
  redis.call('ZADD', workspace_set(wid), score, call)
  redis.call('ZADD', campaign_set(cid), score, call)
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
      settle_nodes(cid, wid)
    else
      redis.call('ZREM', K_ORG, call)
    end
  end
end

-- {cid: {slots, wid}} and {wid: {slots, waiting = 0, children = 0}} for the whole tree (cfg).
local function whole_tree()
  local config = redis.call('HGETALL', K_CFG)
  local campaigns, workspaces = {}, {}
  for i = 1, #config, 2 do
    local kind, id = string.match(config[i], '^([wc]):(.+)$')
    if kind == 'w' then
      local slots = string.match(config[i + 1], '^(%S+)')
      workspaces[id] = {slots = tonumber(slots), waiting = 0, children = 0}
    elseif kind == 'c' then
      local slots, _, wid = string.match(config[i + 1], '^(%S+) (%S+) (%S+)$')
      campaigns[id] = {slots = tonumber(slots), wid = wid}
    end
  end
  return campaigns, workspaces
end

-- The same for the configured campaigns among `ids` and their workspaces, from the node hashes.
local function part_of_tree(ids)
  local campaigns, workspaces = {}, {}
  for _, cid in ipairs(ids) do
    if not campaigns[cid] then
      local v = redis.call('HMGET', campaign_node(cid), 'slots', 'workspace')
      if v[1] then campaigns[cid] = {slots = tonumber(v[1]), wid = v[2]} end
    end
  end
  for _, campaign in pairs(campaigns) do
    local wid = campaign.wid
    if workspaces[wid] == nil then
      local slots = redis.call('HGET', workspace_node(wid), 'slots')
      workspaces[wid] = slots and {slots = tonumber(slots), waiting = 0, children = 0} or false
    end
  end
  return campaigns, workspaces
end

-- Rebuild the nodes' waiting work, claims and children sums from the lease sets and `waiting`
-- ({campaign id: count}: campaigns left out have none), or, when `waiting` is nil, from each
-- campaign's own waiting work over the whole tree. A workspace's waiting work is the sum over
-- its configured campaigns. Workspaces none of whose campaigns is rewritten already hold zeros.
local function recompute_claims(waiting)
  local campaigns, workspaces
  if waiting then
    local ids = redis.call('SMEMBERS', K_WAITING_CAMPAIGNS)
    for cid in pairs(waiting) do ids[#ids + 1] = cid end
    campaigns, workspaces = part_of_tree(ids)
  else
    campaigns, workspaces = whole_tree()
  end
  redis.call('DEL', K_WAITING_CAMPAIGNS)
  for cid, campaign in pairs(campaigns) do
    local node = campaign_node(cid)
    local workspace = workspaces[campaign.wid]
    local w
    if waiting then
      w = waiting[cid] or 0
    else
      w = tonumber(redis.call('HGET', node, 'waiting') or '0')
    end
    local c = 0
    if workspace and w > 0 then
      workspace.waiting = workspace.waiting + w
      c = claim(campaign.slots, redis.call('ZCARD', campaign_set(cid)), w)
      workspace.children = workspace.children + c
      redis.call('SADD', K_WAITING_CAMPAIGNS, cid)
    else
      w = 0
    end
    redis.call('HSET', node, 'waiting', w, 'claim', c)
  end
  local organisation_children = 0
  for wid, workspace in pairs(workspaces) do
    if workspace then
      local c = 0
      if workspace.waiting > 0 then
        c = claim(workspace.slots, redis.call('ZCARD', workspace_set(wid)), workspace.waiting)
        organisation_children = organisation_children + c
      end
      redis.call('HSET', workspace_node(wid), 'waiting', workspace.waiting, 'claim', c,
                 'children', workspace.children)
    end
  end
  redis.call('HSET', K_ORG_NODE, 'children', organisation_children)
end
