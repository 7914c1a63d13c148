-- wake: an organisation has tasks due at an instant past beat's next tick; no run now would find
-- them due, so the wake-up schedule is moved to it instead of a run being asked for.
-- KEYS[1] the organisation's dispatch lock (dialer.keys.dispatch_lock)
-- KEYS[2] its rerun mark (dialer.keys.dispatch_rerun)
-- KEYS[3] the wake-up schedule (dialer.keys.WAKEUPS)
-- ARGV[1] the rerun mark's lifetime, seconds
-- ARGV[2] the organisation's id
-- ARGV[3] the instant, epoch ms
-- A run holding the lock read PostgreSQL before the tasks committed and ends by overwriting the
-- schedule's entry with what it read: it gets the rerun mark, so its last pass reads them.

if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('SET', KEYS[2], 1, 'EX', ARGV[1])
end
redis.call('ZADD', KEYS[3], 'LT', ARGV[3], ARGV[2])
return 1
