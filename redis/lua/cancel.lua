-- cancel puts the visitor's hold back on sale at once; cancelling a
-- cancelled hold returns it unchanged, and a hold found past its expires_at
-- is released as expired instead. Running it twice is harmless, so it keeps
-- no run record.
-- KEYS[1..NK] as in lib.lua. ARGV: now (µs or ''), reservation number,
-- visitor. Returns the record or "!code".
local now = clock(ARGV[1])
local n = ARGV[2]
local ev, r, answer = open_hold(n, ARGV[3], now, nil)
if not ev then
  return answer
end
release(ev, n, r, 'cancelled', now)
save_event(ev, now)
return encode(r)
