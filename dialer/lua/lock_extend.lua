-- lock_extend: keep the dispatch lock through a long run, only if this holder still has it.
-- KEYS[1] the organisation's dispatch lock (dialer.keys.dispatch_lock)
-- ARGV[1] the holder's token   ARGV[2] new time to live in ms
-- Returns: 1 extended; 0 the lock expired and another holder may have it.

if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
