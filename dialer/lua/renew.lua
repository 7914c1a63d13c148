-- renew: move a call's lease expiry to a new time, only if the fencing token is the lease's own.
-- KEYS[1], ARGV[1..2]: see _shared.lua (ARGV[2] unused).
-- ARGV[3] call id   ARGV[4] fencing token   ARGV[5] new expiry in ms
-- Returns: 1 renewed; 0 no lease for the call id; -1 the lease belongs to another token.
-- A lease already pruned past expiry occupies its slots again: the call is still live, and
-- live calls are never cut, even if that puts a node over its cap until calls end.
--- @include _shared

local call = ARGV[3]
local record = redis.call('HGET', K_LEASES, call)
if not record then return 0 end
local token, _, cid, wid = parse_lease(record)
if token ~= ARGV[4] then return -1 end

local expiry = tonumber(ARGV[5])
local was_pruned = redis.call('ZREM', K_EXPIRED, call) == 1
occupy(call, expiry, cid, wid)
redis.call('HSET', K_LEASES, call, lease_record(tonumber(token), expiry, cid, wid))
if was_pruned then settle_nodes(cid, wid) end
return 1
