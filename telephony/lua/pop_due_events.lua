-- Pop the simulator's due events, atomically: each event goes to exactly one caller.
-- KEYS[1]  sorted set of event ids scored by due time (ms)
-- KEYS[2]  hash: event id -> event JSON
-- ARGV[1]  now (ms); events scored at or before it are due
-- ARGV[2]  most events to pop
-- ARGV[3]  key prefix of a simulated call's state hash (prefix .. carrier_call_id)
-- Returns: the popped events' JSON, in due order. Each popped event also becomes its call's
-- `last` event and moves its `status`, so a status fetch sees what the events said.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids == 0 then
  return {}
end
redis.call('ZREM', KEYS[1], unpack(ids))
local payloads = redis.call('HMGET', KEYS[2], unpack(ids))
redis.call('HDEL', KEYS[2], unpack(ids))
local popped = {}
for _, payload in ipairs(payloads) do
  if payload then
    popped[#popped + 1] = payload
    local event = cjson.decode(payload)
    local state = ARGV[3] .. event['carrier_call_id']
    if redis.call('EXISTS', state) == 1 then
      redis.call('HSET', state, 'status', event['sim_status'], 'last', payload)
    end
  end
end
return popped
