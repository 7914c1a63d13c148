-- take_due_wakeups: remove and return the organisations whose wake-up instant has come.
-- KEYS[1] the wake-up sorted set (dialer.keys.WAKEUPS)
-- ARGV[1] now, epoch ms   ARGV[2] the most to take in one call
-- Returns: the organisation ids taken, earliest first. Atomic, so an instant written by a
-- dispatcher run between the read and the removal is never removed unread.

local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
end
return due
