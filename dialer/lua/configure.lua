-- configure: replace the organisation's allocation tree and re-derive every claim.
-- KEYS[1..8], ARGV[1..2]: see _shared.lua (ARGV[2] unused).
-- ARGV[3] organisation total   ARGV[4] version of the tree
-- ARGV[5..] field, value pairs: "w:<id>" "<slots> <soft>" and "c:<id>" "<slots> <soft> <wid>"
-- Returns: 1.
-- Leases are untouched: an allocation lowered below use admits nothing until calls end.

redis.call('DEL', K_CFG)
redis.call('HSET', K_CFG, 'total', ARGV[3], 'version', ARGV[4])
for i = 5, #ARGV, 2 do
  redis.call('HSET', K_CFG, ARGV[i], ARGV[i + 1])
end
recompute_claims()
return 1
