-- configure: replace the organisation's allocation tree and re-derive every claim.
-- KEYS[1], ARGV[1..2]: see _shared.lua (ARGV[2] unused).
-- ARGV[3] organisation total   ARGV[4] version of the tree
-- ARGV[5..] field, value pairs: "w:<id>" "<slots> <soft>" and "c:<id>" "<slots> <soft> <wid>"
-- Returns: 1.
-- cfg keeps the tree for the scripts that walk it (usage, headroom); each node's hash gets its
-- own copy for admission, which reads only the nodes it touches. Nodes left out of the tree
-- lose their hash (so they admit nothing), keeping their waiting work out of every sum.
-- Leases are untouched: an allocation lowered below use admits nothing until calls end.
--- @include _shared

local configured = {}
for i = 5, #ARGV, 2 do configured[ARGV[i]] = ARGV[i + 1] end
local old = redis.call('HKEYS', K_CFG)
for _, field in ipairs(old) do
  if not configured[field] then
    local kind, id = string.match(field, '^([wc]):(.+)$')
    if kind then redis.call('DEL', PREFIX .. 'node:' .. kind .. ':' .. id) end
  end
end

redis.call('DEL', K_CFG)
redis.call('HSET', K_CFG, 'total', ARGV[3], 'version', ARGV[4])
redis.call('HSET', K_ORG_NODE, 'slots', ARGV[3])
for field, value in pairs(configured) do
  redis.call('HSET', K_CFG, field, value)
  local kind, id = string.match(field, '^([wc]):(.+)$')
  local slots, soft, wid = string.match(value, '^(%S+) (%S+) ?(%S*)$')
  if kind == 'w' then
    redis.call('HSET', workspace_node(id), 'slots', slots, 'soft', soft)
  else
    redis.call('HSET', campaign_node(id), 'slots', slots, 'soft', soft, 'workspace', wid)
  end
end
recompute_claims(nil)
return 1
