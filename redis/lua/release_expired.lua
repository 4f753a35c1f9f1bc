-- release_expired releases at most ARGV[2] (at most RELEASE_CHUNK) of the
-- event's expired holds, oldest first. KEYS[1..NK] as in lib.lua; ARGV[1] is
-- now (µs or ''). Returns how many it released. Running it twice releases
-- no hold twice, so it keeps no run record.
local now = clock(ARGV[1])
local ev = load_event()
if not ev then
  return 0
end
local n = release_expired(ev, now, math.min(tonumber(ARGV[2]), RELEASE_CHUNK))
save_event(ev, now)
return n
