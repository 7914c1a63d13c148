-- restore: re-create leases of calls known live elsewhere (PostgreSQL) and open the epoch.
-- KEYS[1], ARGV[1..2]: see _shared.lua.
-- ARGV[3] lease length in ms
-- ARGV[4..] call id, campaign id, workspace id, token ("" when the call has none) quadruples
-- Returns: flat list of call id, token pairs for the calls given no token (fresh tokens).
-- A call id that already holds a lease keeps it. The fence moves past every restored token and
-- past now * 1000, so tokens stay monotonic across a Redis that lost its data.
--- @include _shared

local now = now_ms()
local expiry = now + tonumber(ARGV[3])
local floor = now * 1000
local fence = tonumber(redis.call('GET', K_FENCE) or '0')
if fence > floor then floor = fence end
for i = 4, #ARGV, 4 do
  local token = tonumber(ARGV[i + 3])
  if token and token > floor then floor = token end
end
redis.call('SET', K_FENCE, string.format('%d', floor))

local fresh = {}
for i = 4, #ARGV, 4 do
  local call, cid, wid = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('HEXISTS', K_LEASES, call) == 0 then
    local token = tonumber(ARGV[i + 3])
    if not token then
      token = redis.call('INCR', K_FENCE)
      fresh[#fresh + 1] = call
      fresh[#fresh + 1] = token
    end
    occupy(call, expiry, cid, wid)
    redis.call('HSET', K_LEASES, call, lease_record(token, expiry, cid, wid))
  end
end
redis.call('SET', K_EPOCH, string.format('%d', now))
recompute_claims(nil)
return fresh
