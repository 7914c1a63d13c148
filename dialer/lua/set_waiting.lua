-- set_waiting: replace the eligible waiting work of every campaign (absent = none waiting).
-- KEYS[1..8], ARGV[1..2]: see _shared.lua (ARGV[2] unused).
-- ARGV[3..] campaign id, waiting count pairs
-- Returns: 1.
-- Workspace figures are derived from the campaigns' workspaces in the allocation tree.

redis.call('DEL', K_WAITING)
for i = 3, #ARGV, 2 do
  if tonumber(ARGV[i + 1]) > 0 then
    redis.call('HSET', K_WAITING, 'c:' .. ARGV[i], ARGV[i + 1])
  end
end
recompute_claims()
return 1
