-- nudge: ask for a dispatcher run of one organisation.
-- KEYS[1] the organisation's dispatch lock (dialer.keys.dispatch_lock)
-- KEYS[2] its rerun mark (dialer.keys.dispatch_rerun)
-- KEYS[3] its nudge mark (dialer.keys.dispatch_nudged)
-- KEYS[4] optional: its held numbers (dialer.keys.held_numbers), for the end of a call whose slot
--   was freed before (wrap-up): a job is published only when a pass held a task back for the
--   call's number, ARGV[3], which is taken out. A run under way is marked either way: its pass
--   may have read the call as not ended before this end committed.
-- ARGV[1] the rerun mark's lifetime, seconds
-- ARGV[2] the nudge mark's lifetime, seconds
-- Returns: 1 publish a dispatch job (the nudge mark is now set); 0 publish nothing: a run holds
--   the lock and will make one more pass (its rerun mark is now set), a job is already
--   published and has not started, or nothing waits for the number.

local wanted = true
if KEYS[4] then
  wanted = redis.call('SREM', KEYS[4], ARGV[3]) == 1
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('SET', KEYS[2], 1, 'EX', ARGV[1])
  return 0
end
if wanted and redis.call('SET', KEYS[3], 1, 'NX', 'EX', ARGV[2]) then
  return 1
end
return 0
