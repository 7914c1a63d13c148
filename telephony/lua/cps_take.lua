--[[ Calls-per-second limit of one calling number: a GCRA token bucket (burst = the rate).

KEYS[1]  the number's bucket: the theoretical arrival time of the next call, in ms
ARGV[1]  calls per second allowed (> 0)
ARGV[2]  now in ms; empty = Redis TIME (tests pass a fixed time)

Returns: 0 when a call may start now (and counts it), else the ms to wait before asking again.
]]
local rate = tonumber(ARGV[1])
local now
if ARGV[2] ~= nil and ARGV[2] ~= '' then
    now = tonumber(ARGV[2])
else
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local interval = 1000 / rate
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
    tat = now
end
local allowed_at = tat - 1000 + interval
if allowed_at > now then
    return math.ceil(allowed_at - now)
end
local next_tat = tat + interval
redis.call('SET', KEYS[1], tostring(next_tat), 'PX', math.ceil(next_tat - now) + 1000)
return 0
