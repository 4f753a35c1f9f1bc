-- reserve_batch is group commit: a whole batch of reserves for one event in
-- one script call, decided in arrival order exactly as consecutive calls of
-- reserve.lua would decide them: the stock is counted in the script and
-- written once at the end, while visitor holds, idempotency keys and queue
-- entries are written as each request is granted, so every request sees the
-- earlier requests of its batch.
-- KEYS[1..NK] as in lib.lua, then KEYS[NK+i] holds the idempotency keys of
-- request i's visitor.
-- ARGV: now (µs or ''), event id, n, then for each request: amount,
-- visitor, idempotency key, idempotency field, conflict ('1' or ''),
-- admission.
-- Returns one "number record" or "!code" per request, in order. When a
-- request needs more expired holds released than one call may release, its
-- answer is '!more' and the list ends there: the caller sends the rest
-- again in a new call.
local now = clock(ARGV[1])
local prev = ran_reserves()
if prev then
  return prev
end
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
  local a = 3 + (i - 1) * 6
  out[i] = reserve_one(ev, eid, now, ARGV[a + 1], ARGV[a + 2], ARGV[a + 3],
    KEYS[NK + i], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6])
  if out[i] == '!more' then
    break
  end
end
save_event(ev, now)
return remember_reserves(out)
