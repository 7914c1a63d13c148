-- nudge: ask for a dispatcher run of one organisation.
-- KEYS[1] the organisation's dispatch lock (dialer.keys.dispatch_lock)
-- KEYS[2] its rerun mark (dialer.keys.dispatch_rerun)
-- KEYS[3] its nudge mark (dialer.keys.dispatch_nudged)
-- ARGV[1] the rerun mark's lifetime, seconds
-- ARGV[2] the nudge mark's lifetime, seconds
-- Returns: 1 publish a dispatch job (the nudge mark is now set); 0 publish nothing: a run holds
--   the lock and will make one more pass (its rerun mark is now set), or a job is already
--   published and has not started.

if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('SET', KEYS[2], 1, 'EX', ARGV[1])
  return 0
end
if redis.call('SET', KEYS[3], 1, 'NX', 'EX', ARGV[2]) then
  return 1
end
return 0
