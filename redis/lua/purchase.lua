-- purchase turns the visitor's unexpired hold into a sale; a hold found past
-- its expires_at is released as expired instead.
-- KEYS[1..5] as in lib.lua. ARGV: now (µs or ''), reservation number,
-- visitor. Returns the record or "!code".
local now = clock(ARGV[1])
local n = ARGV[2]
local ev = load_event()
if not ev then
  return '!reservation_not_found'
end
local s = redis.call('HGET', KEYS[2], n)
if not s then
  return '!reservation_not_found'
end
local r = decode(s)
if r.visitor ~= ARGV[3] then
  return '!reservation_not_found'
elseif r.status == 'purchased' then
  return '!reservation_already_purchased'
elseif r.status == 'cancelled' then
  return '!reservation_cancelled'
elseif r.status == 'expired' then
  return '!reservation_expired'
end
if r.expires <= now then
  release(ev, n, r, 'expired', now)
  save_event(ev, now)
  return '!reservation_expired'
end

redis.call('ZREM', KEYS[3], n)
if ev.mpv > 0 then
  redis.call('ZREM', KEYS[4], vmember(r, n))
  redis.call('HINCRBY', KEYS[5], r.visitor, r.amount)
end
r.status = 'purchased'
r.updated = now
s = encode(r)
redis.call('HSET', KEYS[2], n, s)
ev.held = ev.held - r.amount
ev.purchased = ev.purchased + r.amount
ev.changed = true
save_event(ev, now)
return s
