-- lib.lua is prepended to every script below when the package loads, so
-- each script is self-contained: one EVALSHA, one atomic change.
--
-- Every script that touches an event takes the same five keys, all in the
-- event's hash slot ({e:ID}):
--   KEYS[1] the event hash: name, ticket_quantity, capacity, hold_seconds,
--           max_per_visitor, sale_starts_at, created_at, updated_at, and the
--           counters seq (last reservation number), held, purchased,
--           expired, cancelled (tickets by reservation status)
--   KEYS[2] reservations: hash, reservation number -> record
--   KEYS[3] holds: sorted set of reservation numbers in status reserved,
--           scored by expires_at
--   KEYS[4] visitor holds: lexically sorted set of the same holds as
--           "visitor:expires_at:number:amount", so one visitor's unexpired
--           holds are one ZRANGEBYLEX (kept only when max_per_visitor > 0)
--   KEYS[5] visitor purchases: hash, visitor -> tickets bought (kept only
--           when max_per_visitor > 0)
--
-- A reservation record is one string of space-separated fields:
--   status amount visitor expires_at created_at updated_at idempotency_key
-- The key comes last and may be empty; it never holds a space.
--
-- Times are integer microseconds since the Unix epoch. Lua numbers are
-- doubles, exact up to 2^53, which covers every time and id used here; they
-- are always written with string.format('%d'), because tostring() and the
-- implicit conversion in redis.call would print 1.7e+15.

local ID_SPAN = 268435456 -- 2^28 reservation numbers per event, see doc.go
local US = 1000000

local function int(n)
  return string.format('%d', n)
end

-- clock returns ARGV's time when the caller passed one, else the server's
-- own, so that every process sharing this Redis shares one clock.
local function clock(arg)
  if arg ~= nil and arg ~= '' then
    return tonumber(arg)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * US + tonumber(t[2])
end

local function decode(s)
  local st, a, v, x, c, u, k = string.match(s, '^(%a+) (%d+) (%S+) (%d+) (%d+) (%d+) (%S*)$')
  return {status = st, amount = tonumber(a), visitor = v, expires = tonumber(x),
          created = tonumber(c), updated = tonumber(u), key = k}
end

local function encode(r)
  return r.status .. ' ' .. int(r.amount) .. ' ' .. r.visitor .. ' ' .. int(r.expires) .. ' ' ..
    int(r.created) .. ' ' .. int(r.updated) .. ' ' .. r.key
end

-- pad makes times sort lexically as they sort numerically (every time is
-- positive and below 10^17).
local function pad(t)
  return string.format('%017d', t)
end

local function vmember(r, n)
  return r.visitor .. ':' .. pad(r.expires) .. ':' .. n .. ':' .. int(r.amount)
end

local function load_event()
  local v = redis.call('HMGET', KEYS[1], 'ticket_quantity', 'hold_seconds', 'max_per_visitor',
    'sale_starts_at', 'seq', 'held', 'purchased', 'expired', 'cancelled')
  if not v[1] then
    return nil
  end
  local ev = {tq = tonumber(v[1]), hold = tonumber(v[2]), mpv = tonumber(v[3]), sale = nil,
    seq = tonumber(v[5]), held = tonumber(v[6]), purchased = tonumber(v[7]),
    expired = tonumber(v[8]), cancelled = tonumber(v[9]), changed = false, stocked = false,
    new_res = {}, new_holds = {}, made = {}}
  if v[4] ~= '' then
    ev.sale = tonumber(v[4])
  end
  return ev
end

-- BULK bounds the arguments of one command built with unpack, well below
-- Lua's C stack limit.
local BULK = 1000

local function bulk(cmd, key, args)
  for i = 1, #args, BULK do
    redis.call(cmd, key, unpack(args, i, math.min(i + BULK - 1, #args)))
  end
end

-- save_event writes the new reservations, which reserve_one collects so a
-- batch writes them with one HSET and one ZADD, and the counters. updated_at
-- moves only when the stock did, as an UPDATE of ticket_quantity does in the
-- SQL backends.
local function save_event(ev, now)
  if #ev.new_res > 0 then
    bulk('HSET', KEYS[2], ev.new_res)
    bulk('ZADD', KEYS[3], ev.new_holds)
  end
  if not ev.changed then
    return
  end
  local args = {'ticket_quantity', int(ev.tq), 'seq', int(ev.seq),
    'held', int(ev.held), 'purchased', int(ev.purchased),
    'expired', int(ev.expired), 'cancelled', int(ev.cancelled)}
  if ev.stocked then
    args[#args + 1], args[#args + 2] = 'updated_at', int(now)
  end
  redis.call('HSET', KEYS[1], unpack(args))
end

-- release ends a hold r (number n) as status 'expired' or 'cancelled' and
-- puts its tickets back on sale.
local function release(ev, n, r, status, now)
  redis.call('ZREM', KEYS[3], n)
  if ev.mpv > 0 then
    redis.call('ZREM', KEYS[4], vmember(r, n))
  end
  r.status = status
  r.updated = now
  redis.call('HSET', KEYS[2], n, encode(r))
  ev.tq = ev.tq + r.amount
  ev.held = ev.held - r.amount
  if status == 'expired' then
    ev.expired = ev.expired + r.amount
  else
    ev.cancelled = ev.cancelled + r.amount
  end
  ev.changed = true
  ev.stocked = true
end

-- release_expired releases the event's holds whose expires_at is not after
-- now, oldest first, at most limit of them (all when limit is nil). Taking
-- them from the holds set and changing their status happen in the same
-- script, so each is released exactly once however many sweepers run.
local function release_expired(ev, now, limit)
  local ns
  if limit then
    ns = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', int(now), 'LIMIT', 0, limit)
  else
    ns = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', int(now))
  end
  for _, n in ipairs(ns) do
    release(ev, n, decode(redis.call('HGET', KEYS[2], n)), 'expired', now)
  end
  return #ns
end

-- visitor_held is what counts against max_per_visitor: the visitor's
-- purchases and unexpired holds (expires_at after now), released or not.
local function visitor_held(visitor, now)
  local held = tonumber(redis.call('HGET', KEYS[5], visitor) or '0')
  local ms = redis.call('ZRANGEBYLEX', KEYS[4], '(' .. visitor .. ':' .. pad(now) .. ';', '(' .. visitor .. ';')
  for _, m in ipairs(ms) do
    held = held + tonumber(string.match(m, ':(%d+)$'))
  end
  return held
end

-- reserve_one decides one request as the SQL backends' Reserve does, in the
-- same order: idempotency key, release of expired holds if stock is short,
-- then ticketrush.Decide's rules (sale start, visitor limit, stock). It
-- returns the reservation as "number record", or "!code" (with an argument
-- after a space for the visitor limit).
--
-- idem_key/idem_field locate the visitor's Idempotency-Key record, whose
-- value is the reservation id; conflict is '1' when the caller already knows
-- the key was used on another event (see reserve.go).
local function reserve_one(ev, eid, now, amount_s, visitor, key, idem_key, idem_field, conflict)
  local amount = tonumber(amount_s)
  if key ~= '' then
    if conflict == '1' then
      return '!idempotency_key_reused'
    end
    local prev = redis.call('HGET', idem_key, idem_field)
    if prev then
      local id = tonumber(prev)
      local n = id % ID_SPAN
      if (id - n) / ID_SPAN ~= eid then
        return '!idempotency_key_reused'
      end
      local s = ev.made[int(n)] or redis.call('HGET', KEYS[2], int(n))
      if not s or decode(s).amount ~= amount then
        return '!idempotency_key_reused'
      end
      return int(n) .. ' ' .. s
    end
  end

  if ev.tq < amount and not ev.swept then
    -- Nothing else can expire at this same now, so a batch sweeps once.
    release_expired(ev, now, nil)
    ev.swept = true
  end
  if ev.sale and now < ev.sale then
    return '!sale_not_started'
  end
  if ev.mpv > 0 and visitor_held(visitor, now) + amount > ev.mpv then
    return '!visitor_limit_exceeded ' .. int(ev.mpv)
  end
  if ev.tq < amount then
    return '!not_enough_tickets'
  end
  if ev.seq + 1 >= ID_SPAN then
    return '!ids_exhausted'
  end

  ev.seq = ev.seq + 1
  local n = int(ev.seq)
  if not ev.now_s then
    -- Every hold of one call shares now and expires_at: format them once.
    local x = now + ev.hold * US
    ev.now_s, ev.exp_s, ev.exp_pad = int(now), int(x), pad(x)
  end
  local s = 'reserved ' .. amount_s .. ' ' .. visitor .. ' ' .. ev.exp_s .. ' ' ..
    ev.now_s .. ' ' .. ev.now_s .. ' ' .. key
  -- Written by save_event. Nothing in this script reads them back before
  -- then but an idempotent repeat, which looks in ev.made first; the visitor
  -- holds and the key record, which later requests do read, are written now.
  local k = #ev.new_res
  ev.new_res[k + 1], ev.new_res[k + 2] = n, s
  ev.new_holds[k + 1], ev.new_holds[k + 2] = ev.exp_s, n
  ev.made[n] = s
  if ev.mpv > 0 then
    redis.call('ZADD', KEYS[4], 0, visitor .. ':' .. ev.exp_pad .. ':' .. n .. ':' .. amount_s)
  end
  if key ~= '' then
    redis.call('HSET', idem_key, idem_field, int(eid * ID_SPAN + ev.seq))
  end
  ev.tq = ev.tq - amount
  ev.held = ev.held + amount
  ev.changed = true
  ev.stocked = true
  return n .. ' ' .. s
end

-- open_hold reads the visitor's hold n for a purchase or a cancel. It
-- returns ev, r when the hold is reserved and unexpired; otherwise nil, nil
-- and the answer to give: an error code, or for a cancelled hold
-- on_cancelled, or the record itself when on_cancelled is nil. A hold found
-- past its expires_at is released as expired on the way.
local function open_hold(n, visitor, now, on_cancelled)
  local ev = load_event()
  if not ev then
    return nil, nil, '!reservation_not_found'
  end
  local s = redis.call('HGET', KEYS[2], n)
  if not s then
    return nil, nil, '!reservation_not_found'
  end
  local r = decode(s)
  if r.visitor ~= visitor then
    return nil, nil, '!reservation_not_found'
  elseif r.status == 'purchased' then
    return nil, nil, '!reservation_already_purchased'
  elseif r.status == 'cancelled' then
    return nil, nil, on_cancelled or s
  elseif r.status == 'expired' then
    return nil, nil, '!reservation_expired'
  end
  if r.expires <= now then
    release(ev, n, r, 'expired', now)
    save_event(ev, now)
    return nil, nil, '!reservation_expired'
  end
  return ev, r
end
