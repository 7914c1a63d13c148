-- lock_release: delete the dispatch lock, only if this holder's token is the lock's.
-- KEYS[1] the organisation's dispatch lock (dialer.keys.dispatch_lock)
-- ARGV[1] the holder's token
-- Returns: 1 released; 0 the lock expired or another holder has it (nothing changes).

if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
