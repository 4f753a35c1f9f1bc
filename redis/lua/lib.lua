-- lib.lua is prepended to every script below when the package loads, so
-- each script is self-contained: one EVALSHA, one atomic change.
--
-- Every script that touches an event takes the same NK keys, all in the
-- event's hash slot ({e:ID}), then the keys of its own (KEYS[NK+i]):
--   KEYS[1] the event hash: name, ticket_quantity, capacity, hold_seconds,
--           max_per_visitor, sale_starts_at, created_at, updated_at,
--           max_per_order, hidden, sale_closed, the waiting room (wr = 1
--           when it has one; wr_apm, wr_max_active, wr_pass, wr_preopen,
--           wr_bits, wr_paused), and the counters seq (last reservation
--           number), held, purchased, expired, cancelled (tickets by
--           reservation status)
--   KEYS[2] reservations: hash, reservation number -> record
--   KEYS[3] holds: sorted set of reservation numbers in status reserved,
--           scored by expires_at
--   KEYS[4] visitors: hash, visitor -> "bought number:expires_at:amount ...",
--           the tickets the visitor bought and the visitor's holds in status
--           reserved, so that the per-visitor check is one HGET however
--           many reservations the event has (kept only when
--           max_per_visitor > 0)
--   KEYS[5] queue entries: hash, visitor -> entry record (see queue.go)
--   KEYS[6] queue state: hash of counters (see load_queue)
--   KEYS[7] pre-queue: list of visitors in join order, before the shuffle
--   KEYS[8] shuffle: sorted set of pre-queue visitors scored by their
--           random key, between the shuffle's two passes
--   KEYS[9] queue order: hash, position -> visitor, for positions given
--           and not yet admitted
--   KEYS[10] active: sorted set of admitted visitors not yet done, scored
--           by when they stop being active (pass or hold expiry)
--   KEYS[11] admission stamps: sorted set of positions scored by
--           admitted_at, trimmed to the last 60 s
--   KEYS[12] this call's run record: the answer of a write script, kept a
--           while so a call the client sends again (a Cluster client does
--           after a lost reply) answers as the first run did
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
local NK = 12
-- RELEASE_CHUNK bounds the expired holds one script call releases (Go's
-- releaseChunk): a loop inside one script still blocks the whole server.
local RELEASE_CHUNK = 100
-- QUEUE_CHUNK bounds the entries one advance shuffles, expires or admits
-- (ticketrush.QueueChunk).
local QUEUE_CHUNK = 1000

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

-- Run records. A write script first asks ran() for the answer of an
-- earlier run of the same call (same run id, so same KEYS[12]) and returns
-- it if there is one; otherwise it records its answer with remember(). The
-- key ends in ":run:ID:TTL" (seconds to keep it); a key ending in ":run:"
-- means the caller needs no record (a single Redis, which never sends a
-- call twice).
local RUN_TTL = KEYS[12] and string.match(KEYS[12], ':run:%x+:(%d+)$')

local function ran()
  if not RUN_TTL then
    return nil
  end
  local v = redis.call('GET', KEYS[12])
  if v then
    return cjson.decode(v)
  end
  return nil
end

local function remember(answer)
  if RUN_TTL then
    redis.call('SET', KEYS[12], cjson.encode(answer), 'EX', RUN_TTL)
  end
  return answer
end

-- Reserve answers are kept short in run records: a granted request as its
-- reservation number alone, read back on a repeat (the reservation as it
-- is then), so a busy event's records stay small.
local function remember_reserves(answers)
  local short = {}
  for i, a in ipairs(answers) do
    short[i] = string.match(a, '^(%d+) ') or a
  end
  remember(short)
  return answers
end

local function ran_reserves()
  local short = ran()
  if not short then
    return nil
  end
  for i, a in ipairs(short) do
    if string.match(a, '^%d+$') then
      short[i] = a .. ' ' .. redis.call('HGET', KEYS[2], a)
    end
  end
  return short
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

-- A queue entry record is one string of space-separated fields:
--   state attempt position joined_at admitted_at pass_expires_at reservation challenge
-- with 0 for a time or number not set; the challenge comes last and may be
-- empty or hold spaces.
local function decode_entry(s)
  local st, a, p, j, ad, px, r, ch = string.match(s, '^(%a+) (%d+) (%d+) (%d+) (%d+) (%d+) (%d+) (.*)$')
  return {state = st, attempt = tonumber(a), pos = tonumber(p), joined = tonumber(j),
          admitted = tonumber(ad), passexp = tonumber(px), res = tonumber(r), challenge = ch}
end

local function encode_entry(e)
  return e.state .. ' ' .. int(e.attempt) .. ' ' .. int(e.pos) .. ' ' .. int(e.joined) .. ' ' ..
    int(e.admitted) .. ' ' .. int(e.passexp) .. ' ' .. int(e.res) .. ' ' .. e.challenge
end

-- A visitor's record in KEYS[4]: tickets bought, then the visitor's holds
-- in status reserved as "number:expires_at:amount". The list is short: holds
-- that count are at most max_per_visitor tickets, and the others leave it
-- when they are released (by a reserve short of stock, the sweeper, a
-- purchase or a cancel).
local function visitor_record(visitor)
  local v = redis.call('HGET', KEYS[4], visitor)
  if not v then
    return 0, ''
  end
  local bought, holds = string.match(v, '^(%d+)(.*)$')
  return tonumber(bought), holds
end

-- vhold_add records hold entry for a visitor whose record is bought, holds.
local function vhold_add(visitor, bought, holds, entry)
  redis.call('HSET', KEYS[4], visitor, int(bought) .. holds .. ' ' .. entry)
end

-- vhold_remove takes hold n off the visitor's record, adding its amount
-- to the tickets bought when it was purchased (sold).
local function vhold_remove(visitor, n, sold)
  local bought, holds = visitor_record(visitor)
  local keep = {int(bought + sold)}
  for e in string.gmatch(holds, '%S+') do
    if string.match(e, '^(%d+):') ~= n then
      keep[#keep + 1] = e
    end
  end
  if #keep == 1 and keep[1] == '0' then
    redis.call('HDEL', KEYS[4], visitor)
  else
    redis.call('HSET', KEYS[4], visitor, table.concat(keep, ' '))
  end
end

local function load_event()
  local v = redis.call('HMGET', KEYS[1], 'ticket_quantity', 'hold_seconds', 'max_per_visitor',
    'sale_starts_at', 'seq', 'held', 'purchased', 'expired', 'cancelled', 'max_per_order',
    'sale_closed', 'wr', 'wr_apm', 'wr_max_active', 'wr_pass', 'wr_preopen', 'wr_paused')
  if not v[1] then
    return nil
  end
  local ev = {tq = tonumber(v[1]), hold = tonumber(v[2]), mpv = tonumber(v[3]), sale = nil,
    seq = tonumber(v[5]), held = tonumber(v[6]), purchased = tonumber(v[7]),
    expired = tonumber(v[8]), cancelled = tonumber(v[9]),
    -- Events written before max_per_order existed take the default.
    mpo = tonumber(v[10] or '10'), closed = v[11] == '1', wr = v[12] == '1',
    changed = false, stocked = false, budget = RELEASE_CHUNK,
    new_res = {}, new_holds = {}, made = {}}
  if v[4] ~= '' then
    ev.sale = tonumber(v[4])
  end
  if ev.wr then
    ev.apm, ev.max_active, ev.pass = tonumber(v[13]), tonumber(v[14]), tonumber(v[15])
    ev.paused = v[17] == '1'
    if v[16] and v[16] ~= '' then
      ev.preopen = tonumber(v[16])
    end
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

-- hold_ended tells the waiting room that hold n of visitor was purchased
-- (ended false: the visitor is done, still admitted) or released (ended
-- true: the entry expires, the visitor may queue again), when the hold was
-- made with the visitor's current admission.
local function hold_ended(ev, visitor, n, ended)
  if not ev.wr then
    return
  end
  local s = redis.call('HGET', KEYS[5], visitor)
  if not s then
    return
  end
  local e = decode_entry(s)
  if e.state ~= 'admitted' or e.res ~= tonumber(n) then
    return
  end
  redis.call('ZREM', KEYS[10], visitor)
  if ended then
    e.state = 'expired'
    redis.call('HSET', KEYS[5], visitor, encode_entry(e))
  end
end

-- release ends a hold r (number n) as status 'expired' or 'cancelled' and
-- puts its tickets back on sale.
local function release(ev, n, r, status, now)
  redis.call('ZREM', KEYS[3], n)
  if ev.mpv > 0 then
    vhold_remove(r.visitor, n, 0)
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
  hold_ended(ev, r.visitor, n, true)
end

-- release_expired releases the event's holds whose expires_at is not after
-- now, oldest first, at most limit of them. Taking them from the holds set
-- and changing their status happen in the same script, so each is released
-- exactly once however many sweepers run.
local function release_expired(ev, now, limit)
  local ns = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', int(now), 'LIMIT', 0, limit)
  for _, n in ipairs(ns) do
    release(ev, n, decode(redis.call('HGET', KEYS[2], n)), 'expired', now)
  end
  return #ns
end

-- release_needed releases expired holds, oldest first, until the stock
-- covers amount, within the call's budget of RELEASE_CHUNK releases. It
-- returns true when the stock is still short, the budget is spent and
-- expired holds remain: the caller must answer '!more' so that Go calls
-- again, each chunk its own script call.
local function release_needed(ev, now, amount)
  while ev.tq < amount and not ev.drained do
    if ev.budget <= 0 then
      local left = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', int(now), 'LIMIT', 0, 1)
      if #left == 0 then
        ev.drained = true
        return false
      end
      return true
    end
    -- Fetch a few at a time, release only while short.
    local ns = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', int(now), 'LIMIT', 0, math.min(ev.budget, 16))
    if #ns == 0 then
      ev.drained = true
    end
    for _, n in ipairs(ns) do
      if ev.tq >= amount then
        break
      end
      release(ev, n, decode(redis.call('HGET', KEYS[2], n)), 'expired', now)
      ev.budget = ev.budget - 1
    end
  end
  return false
end

-- visitor_held is what counts against max_per_visitor: the visitor's
-- purchases and holds in status reserved that have not expired
-- (expires_at after now; an expired one counts no more even before it is
-- released). It also returns the visitor's record, for vhold_add.
local function visitor_held(visitor, now)
  local bought, holds = visitor_record(visitor)
  local held = bought
  for x, a in string.gmatch(holds, '%d+:(%d+):(%d+)') do
    if tonumber(x) > now then
      held = held + tonumber(a)
    end
  end
  return held, bought, holds
end

-- check_admission is ticketrush.CheckAdmission: it returns the visitor's
-- entry when the event has no waiting room (nil) or the pass (admission,
-- the attempt it names, 0 for none) is valid, else an answer.
local function check_admission(ev, visitor, admission, now)
  if not ev.wr then
    return nil
  end
  local adm = tonumber(admission)
  if adm == 0 then
    return nil, '!admission_required'
  end
  local s = redis.call('HGET', KEYS[5], visitor)
  local e = s and decode_entry(s)
  if not e or e.attempt ~= adm or e.admitted == 0 then
    return nil, '!admission_invalid'
  elseif e.res ~= 0 then
    return nil, '!admission_invalid used'
  elseif e.passexp <= now then
    return nil, '!admission_expired'
  end
  return e
end

-- reserve_one decides one request as the SQL backends' Reserve does, in the
-- same order: idempotency key, then ticketrush.Decide's and
-- CheckAdmission's rules (sale closed, sale start, admission, order limit,
-- visitor limit, stock), releasing expired holds if the stock is short. It returns the
-- reservation as "number record", or "!code" (with an argument after a
-- space for the limits), or '!more' when expired holds must be released in
-- another call first.
--
-- idem_key/idem_field locate the visitor's Idempotency-Key record, whose
-- value is the reservation id; conflict is '1' when the caller already knows
-- the key was used on another event (see reserve.go).
local function reserve_one(ev, eid, now, amount_s, visitor, key, idem_key, idem_field, conflict, admission)
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

  if ev.closed then
    return '!sale_closed'
  end
  if ev.sale and now < ev.sale then
    return '!sale_not_started'
  end
  local entry, refused = check_admission(ev, visitor, admission, now)
  if refused then
    return refused
  end
  if ev.mpo > 0 and amount > ev.mpo then
    return '!order_limit_exceeded ' .. int(ev.mpo)
  end
  local vbought, vholds
  if ev.mpv > 0 then
    local held
    held, vbought, vholds = visitor_held(visitor, now)
    if held + amount > ev.mpv then
      return '!visitor_limit_exceeded ' .. int(ev.mpv)
    end
  end
  -- Only the stock depends on expired holds: release them last, and only
  -- when releasing every hold could cover the request.
  if ev.tq < amount and amount <= ev.tq + ev.held and release_needed(ev, now, amount) then
    return '!more'
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
    ev.now_s, ev.exp_s = int(now), int(x)
  end
  local s = 'reserved ' .. amount_s .. ' ' .. visitor .. ' ' .. ev.exp_s .. ' ' ..
    ev.now_s .. ' ' .. ev.now_s .. ' ' .. key
  -- Written by save_event. Nothing in this script reads them back before
  -- then but an idempotent repeat, which looks in ev.made first; the visitor
  -- holds, the key record and the queue entry, which later requests do
  -- read, are written now.
  local k = #ev.new_res
  ev.new_res[k + 1], ev.new_res[k + 2] = n, s
  ev.new_holds[k + 1], ev.new_holds[k + 2] = ev.exp_s, n
  ev.made[n] = s
  if ev.mpv > 0 then
    vhold_add(visitor, vbought, vholds, n .. ':' .. ev.exp_s .. ':' .. amount_s)
  end
  if key ~= '' then
    redis.call('HSET', idem_key, idem_field, int(eid * ID_SPAN + ev.seq))
  end
  if entry then
    -- The pass is used; the visitor stays active while the hold lasts.
    entry.res = ev.seq
    redis.call('HSET', KEYS[5], visitor, encode_entry(entry))
    redis.call('ZADD', KEYS[10], ev.exp_s, visitor)
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

-- Queue state (KEYS[6]): closed (1 once the pre-queue is closed), pre (its
-- size P, frozen at closing), next (the last position given to a join after
-- closing), assigned (positions the shuffle gave so far), done (1 once the
-- shuffle is complete), tail, serving, admitted (ever), last (the last
-- admission's time), npre and nwait (entries in the pre-queue and waiting).
local QFIELDS = {'closed', 'pre', 'next', 'assigned', 'done', 'tail', 'serving', 'admitted',
  'last', 'npre', 'nwait'}

local function load_queue()
  local v = redis.call('HMGET', KEYS[6], unpack(QFIELDS))
  local q = {}
  for i, f in ipairs(QFIELDS) do
    q[f] = tonumber(v[i] or '0')
  end
  return q
end

local function save_queue(q)
  local args = {}
  for _, f in ipairs(QFIELDS) do
    args[#args + 1] = f
    args[#args + 1] = int(q[f])
  end
  redis.call('HSET', KEYS[6], unpack(args))
end

local function sale_started(ev, now)
  return ev.sale == nil or now >= ev.sale
end

-- close_prequeue freezes the pre-queue once the sale has started: later
-- joins queue behind it. With an empty pre-queue the shuffle is done.
local function close_prequeue(ev, q, now)
  if q.closed == 1 or not sale_started(ev, now) then
    return
  end
  q.closed = 1
  q.pre = q.npre
  q.next = q.pre
  if q.pre == 0 then
    q.done = 1
  end
end

-- entry_state is the entry's state as of now: an admitted entry whose pass
-- ran out unused, or whose hold ended or is past its expiry, is expired.
local function entry_state(e, now)
  if e.state ~= 'admitted' then
    return e.state
  end
  if e.res == 0 then
    if e.passexp <= now then
      return 'expired'
    end
    return 'admitted'
  end
  local s = redis.call('HGET', KEYS[2], int(e.res))
  if not s then
    return 'expired'
  end
  local r = decode(s)
  if r.status == 'purchased' or (r.status == 'reserved' and r.expires > now) then
    return 'admitted'
  end
  return 'expired'
end
