-- usage: a consistent snapshot of live calls per node, for the API and the dashboard.
-- KEYS[1], ARGV[1..2]: see _shared.lua. Read-only.
-- Returns: {total, organisation used, {wid, slots, soft, used, ...}, {cid, wid, slots, soft, used, ...}}
-- "used" counts leases not yet past expiry.
--- @include _shared

local after_now = '(' .. now_ms()
local function live(key) return redis.call('ZCOUNT', key, after_now, '+inf') end

local config = redis.call('HGETALL', K_CFG)
local total = 0
local workspaces, campaigns = {}, {}
for i = 1, #config, 2 do
  local field, value = config[i], config[i + 1]
  local kind, id = string.match(field, '^([wc]):(.+)$')
  if field == 'total' then
    total = tonumber(value)
  elseif kind == 'w' then
    local slots, soft = string.match(value, '^(%S+) (%S+)$')
    for _, v in ipairs({id, tonumber(slots), tonumber(soft), live(workspace_set(id))}) do
      workspaces[#workspaces + 1] = v
    end
  elseif kind == 'c' then
    local slots, soft, wid = string.match(value, '^(%S+) (%S+) (%S+)$')
    for _, v in ipairs({id, wid, tonumber(slots), tonumber(soft), live(campaign_set(id))}) do
      campaigns[#campaigns + 1] = v
    end
  end
end
return {total, live(K_ORG), workspaces, campaigns}
