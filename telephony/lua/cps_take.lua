--[[ Calls-per-second limit of one calling number: take up to N turns now (GCRA, burst = rate).

KEYS[1]  the number's bucket: the theoretical arrival time of its next call, in microseconds
ARGV[1]  calls per second allowed (> 0)
ARGV[2]  turns wanted now (>= 0)
ARGV[3]  now in ms; empty = Redis TIME (tests and the dispatcher's own clock pass one)

Returns: {granted, wait_ms}: the turns taken (0..wanted, each counted against the rate) and the
ms from now until the bucket's next turn after them (0 when one is free now).
]]
local rate = tonumber(ARGV[1])
local wanted = tonumber(ARGV[2])
local now
if ARGV[3] ~= nil and ARGV[3] ~= '' then
    now = tonumber(ARGV[3]) * 1000
else
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
-- Whole microseconds keep the arithmetic exact: rate calls take rate * interval <= 1 s.
local interval = math.floor(1000000 / rate)
local tolerance = 1000000 - interval
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
    tat = now
end
local free = 0
if tat - now <= tolerance then
    free = math.floor((now + tolerance - tat) / interval) + 1
end
local granted = math.min(wanted, free)
if granted > 0 then
    tat = tat + granted * interval
    redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
local wait = tat - tolerance - now
if wait < 0 then
    wait = 0
end
return {granted, math.ceil(wait / 1000)}
