-- reserve is the per-request strategy: one request, one script call.
-- KEYS[1..NK] as in lib.lua; KEYS[NK+1] holds the visitor's idempotency
-- keys. ARGV: now (µs or ''), event id, amount, visitor, idempotency key,
-- idempotency field, conflict ('1' or ''), admission (the pass's attempt,
-- 0 for none).
-- Returns "number record", "!code", or '!more' (call again: expired holds
-- are left to release).
local now = clock(ARGV[1])
local prev = ran_reserves()
if prev then
  return prev[1]
end
local ev = load_event()
if not ev then
  return '!event_not_found'
end
local out = reserve_one(ev, tonumber(ARGV[2]), now, ARGV[3], ARGV[4], ARGV[5], KEYS[NK + 1], ARGV[6],
  ARGV[7], ARGV[8])
save_event(ev, now)
return remember_reserves({out})[1]
