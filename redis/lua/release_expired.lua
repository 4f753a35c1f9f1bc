-- release_expired releases at most ARGV[2] of the event's expired holds,
-- oldest first. KEYS[1..5] as in lib.lua; ARGV[1] is now (µs or '').
-- Returns how many it released.
local now = clock(ARGV[1])
local ev = load_event()
if not ev then
  return 0
end
local n = release_expired(ev, now, tonumber(ARGV[2]))
save_event(ev, now)
return n
