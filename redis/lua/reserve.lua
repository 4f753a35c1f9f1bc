-- reserve is the per-request strategy: one request, one script call.
-- KEYS[1..5] as in lib.lua; KEYS[6] holds the visitor's idempotency keys.
-- ARGV: now (µs or ''), event id, amount, visitor, idempotency key,
-- idempotency field, conflict ('1' or '').
-- Returns "number record" or "!code".
local now = clock(ARGV[1])
local ev = load_event()
if not ev then
  return '!event_not_found'
end
local out = reserve_one(ev, tonumber(ARGV[2]), now, ARGV[3], ARGV[4], ARGV[5], KEYS[6], ARGV[6], ARGV[7])
save_event(ev, now)
return out
