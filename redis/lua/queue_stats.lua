-- queue_stats describes an event's queue as of now (read only).
-- KEYS[1..NK] as in lib.lua. ARGV: now (µs or '').
-- Returns {prequeue, waiting, serving, tail, shuffled (1 or 0), admitted,
-- admitted in the last minute, active, available, held} or {'!code'}.
local now = clock(ARGV[1])
local ev = load_event()
if not ev then
  return {'!event_not_found'}
elseif not ev.wr then
  return {'!waiting_room_not_found'}
end
local q = load_queue()
local shuffled = 0
if q.done == 1 or (q.closed == 0 and sale_started(ev, now) and q.npre == 0) then
  shuffled = 1
end
local last_min = redis.call('ZCOUNT', KEYS[11], '(' .. int(now - 60 * US), '+inf')
local active = redis.call('ZCOUNT', KEYS[10], '(' .. int(now), '+inf')
return {q.npre, q.nwait, q.serving, q.tail, shuffled, q.admitted, last_min, active, ev.tq, ev.held}
