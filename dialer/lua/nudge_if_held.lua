-- nudge_if_held: the end of a call whose slot was freed before (wrap-up) asks for a dispatcher
-- run only when a pass held a task back for its number, or a run is under way (it may be about
-- to hold one: its pass read the call as not ended before this end committed).
-- KEYS[1] the organisation's dispatch lock (dialer.keys.dispatch_lock)
-- KEYS[2] its rerun mark (dialer.keys.dispatch_rerun)
-- KEYS[3] its nudge mark (dialer.keys.dispatch_nudged)
-- KEYS[4] its held numbers (dialer.keys.held_numbers)
-- ARGV[1] the rerun mark's lifetime, seconds
-- ARGV[2] the nudge mark's lifetime, seconds
-- ARGV[3] the call's number
-- Returns: 1 publish a dispatch job; 0 publish nothing (nothing waits for the number, a run will
--   make one more pass, or a job is already published).

local held = redis.call('SREM', KEYS[4], ARGV[3])
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('SET', KEYS[2], 1, 'EX', ARGV[1])
  return 0
end
if held == 1 and redis.call('SET', KEYS[3], 1, 'NX', 'EX', ARGV[2]) then
  return 1
end
return 0
