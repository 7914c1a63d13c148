-- set_waiting: replace the eligible waiting work of every campaign (absent = none waiting).
-- KEYS[1], ARGV[1..2]: see _shared.lua (ARGV[2] unused).
-- ARGV[3..] campaign id, waiting count pairs
-- Returns: 1.
-- Workspace figures are derived from the campaigns' workspaces in the allocation tree.
--- @include _shared

local waiting = {}
for i = 3, #ARGV, 2 do
  local count = tonumber(ARGV[i + 1])
  if count > 0 then waiting[ARGV[i]] = count end
end
recompute_claims(waiting)
return 1
