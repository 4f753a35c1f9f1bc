-- reserve_batch is group commit: a whole batch of reserves for one event in
-- one script call, decided in arrival order exactly as consecutive calls of
-- reserve.lua would decide them: the stock is counted in the script and
-- written once at the end, while visitor holds and idempotency keys are
-- written as each request is granted, so every request sees the earlier
-- requests of its batch.
-- KEYS[1..5] as in lib.lua, then KEYS[5+i] holds the idempotency keys of
-- request i's visitor.
-- ARGV: now (µs or ''), event id, n, then for each request: amount,
-- visitor, idempotency key, idempotency field, conflict ('1' or '').
-- Returns one "number record" or "!code" per request, in order.
local now = clock(ARGV[1])
local eid = tonumber(ARGV[2])
local count = tonumber(ARGV[3])
local out = {}
local ev = load_event()
if not ev then
  for i = 1, count do
    out[i] = '!event_not_found'
  end
  return out
end
for i = 1, count do
  local a = 3 + (i - 1) * 5
  out[i] = reserve_one(ev, eid, now, ARGV[a + 1], ARGV[a + 2], ARGV[a + 3],
    KEYS[5 + i], ARGV[a + 4], ARGV[a + 5])
end
save_event(ev, now)
return out
