-- cancel puts the visitor's hold back on sale at once; cancelling a
-- cancelled hold returns it unchanged, and a hold found past its expires_at
-- is released as expired instead.
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
  return s
elseif r.status == 'expired' then
  return '!reservation_expired'
end
if r.expires <= now then
  release(ev, n, r, 'expired', now)
  save_event(ev, now)
  return '!reservation_expired'
end
release(ev, n, r, 'cancelled', now)
save_event(ev, now)
return encode(r)
