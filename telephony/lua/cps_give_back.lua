--[[ Give turns back to a calling number's bucket: taken for calls that were then not admitted.

KEYS[1]  the number's bucket (see cps_take.lua)
ARGV[1]  calls per second allowed (> 0), as when the turns were taken
ARGV[2]  turns to give back (>= 0)

Returns: 1 when the bucket was moved back, 0 when it had already drained (nothing to give back).
The bucket never holds more than a second's turns: cps_take.lua starts from max(tat, now).
]]
local tat = tonumber(redis.call('GET', KEYS[1]) or '')
if tat == nil then
    return 0
end
local interval = math.floor(1000000 / tonumber(ARGV[1]))
tat = tat - tonumber(ARGV[2]) * interval
redis.call('SET', KEYS[1], string.format('%d', tat), 'KEEPTTL')
return 1
