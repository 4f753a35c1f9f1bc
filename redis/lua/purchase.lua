-- purchase turns the visitor's unexpired hold into a sale; a hold found past
-- its expires_at is released as expired instead.
-- KEYS[1..NK] as in lib.lua. ARGV: now (µs or ''), reservation number,
-- visitor. Returns the record or "!code".
local now = clock(ARGV[1])
local prev = ran()
if prev then
  return prev
end
local n = ARGV[2]
local ev, r, answer = open_hold(n, ARGV[3], now, '!reservation_cancelled')
if not ev then
  return remember(answer)
end
redis.call('ZREM', KEYS[3], n)
if ev.mpv > 0 then
  vhold_remove(r.visitor, n, r.amount)
end
r.status = 'purchased'
r.updated = now
local s = encode(r)
redis.call('HSET', KEYS[2], n, s)
ev.held = ev.held - r.amount
ev.purchased = ev.purchased + r.amount
ev.changed = true
hold_ended(ev, r.visitor, n, false)
save_event(ev, now)
return remember(s)
