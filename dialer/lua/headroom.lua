-- headroom: how many more calls each campaign could start now, for the dispatcher's claim.
-- KEYS[1], ARGV[1..2]: see _shared.lua. Read-only.
-- ARGV[3] the most to report for one campaign (the dispatcher's per-pass bound)
-- Returns: {organisation free, cid, headroom, cid, headroom, ...} listing only campaigns with
-- headroom > 0: a hard campaign's allocation − used; a soft one's at least the organisation's
-- free capacity; never more than that free capacity or ARGV[3]. The admission rule itself is
-- acquire's: this only bounds how many candidates are worth claiming.
--- @include _shared

local after_now = '(' .. now_ms()
local cap = tonumber(ARGV[3])
local config = redis.call('HGETALL', K_CFG)
local total = 0
for i = 1, #config, 2 do
  if config[i] == 'total' then total = tonumber(config[i + 1]) end
end
local free = total - redis.call('ZCOUNT', K_ORG, after_now, '+inf')
if free <= 0 then return {0} end
if free < cap then cap = free end

local reply = {free}
for i = 1, #config, 2 do
  local id = string.match(config[i], '^c:(.+)$')
  if id then
    local slots, soft = string.match(config[i + 1], '^(%S+) (%S+)')
    local room = cap
    if soft ~= '1' then
      room = math.min(cap, tonumber(slots) - redis.call('ZCOUNT', campaign_set(id), after_now, '+inf'))
    end
    if room > 0 then
      reply[#reply + 1] = id
      reply[#reply + 1] = room
    end
  end
end
return reply
