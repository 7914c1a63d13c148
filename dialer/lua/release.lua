-- release: free a call's lease at every level, only if the fencing token is the lease's own.
-- KEYS[1], ARGV[1..2]: see _shared.lua (ARGV[2] unused).
-- ARGV[3] call id   ARGV[4] fencing token
-- Returns: 1 freed; 0 no lease for the call id (already freed: idempotent);
--          -1 the lease belongs to another token (stale caller; nothing changes).
--- @include _shared

local call = ARGV[3]
local record = redis.call('HGET', K_LEASES, call)
if not record then return 0 end
local token, _, cid, wid = parse_lease(record)
if token ~= ARGV[4] then return -1 end

if not vacate(call, cid, wid) then redis.call('ZREM', K_EXPIRED, call) end
redis.call('HDEL', K_LEASES, call)
settle_nodes(cid, wid)
return 1
