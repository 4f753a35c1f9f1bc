-- advance does one bounded step of an event's queue (see
-- ticketrush.Queues.AdvanceQueue): close the pre-queue and shuffle it, mark
-- expired admissions, admit. KEYS[1..NK] as in lib.lua. ARGV: now (µs or
-- ''), then the random keys for the shuffle's first pass, drawn by the
-- caller from a cryptographic source (integers below 2^53).
-- Returns {shuffled, admitted, expired, more (1 or 0)} or {'!code'}.
local now = clock(ARGV[1])
local prev = ran()
if prev then
  return prev
end
local ev = load_event()
if not ev then
  return {'!event_not_found'}
elseif not ev.wr then
  return {'!waiting_room_not_found'}
end
local q = load_queue()
close_prequeue(ev, q, now)
local shuffled, admitted, expired, more = 0, 0, 0, 0

-- 1. The shuffle. Pass 1 gives each pre-queue entry its key; pass 2, once
-- every entry has one, gives positions 1…P in (key, visitor) order.
if q.closed == 1 and q.done == 0 then
  local budget = QUEUE_CHUNK
  local k = 0
  while budget > 0 and k < #ARGV - 1 do
    local v = redis.call('LPOP', KEYS[7])
    if not v then
      break
    end
    k = k + 1
    redis.call('ZADD', KEYS[8], ARGV[1 + k], v)
    budget = budget - 1
  end
  if redis.call('LLEN', KEYS[7]) == 0 and budget > 0 then
    local popped = redis.call('ZPOPMIN', KEYS[8], budget)
    for i = 1, #popped, 2 do
      local v = popped[i]
      local e = decode_entry(redis.call('HGET', KEYS[5], v))
      q.assigned = q.assigned + 1
      e.state, e.pos = 'waiting', q.assigned
      redis.call('HSET', KEYS[5], v, encode_entry(e))
      redis.call('HSET', KEYS[9], int(e.pos), v)
      q.tail = math.max(q.tail, e.pos)
      q.npre = q.npre - 1
      q.nwait = q.nwait + 1
      shuffled = shuffled + 1
    end
    if redis.call('ZCARD', KEYS[8]) == 0 then
      q.done = 1
    end
  end
  if q.done == 0 then
    more = 1
  end
end

-- 2. Admissions that ended: pass run out unused, or hold ended or past its
-- expiry. A purchase leaves the entry admitted and done.
local due = redis.call('ZRANGEBYSCORE', KEYS[10], '-inf', int(now), 'LIMIT', 0, QUEUE_CHUNK)
for _, v in ipairs(due) do
  local s = redis.call('HGET', KEYS[5], v)
  local e = s and decode_entry(s)
  if e and e.state == 'admitted' and entry_state(e, now) == 'expired' then
    e.state = 'expired'
    redis.call('HSET', KEYS[5], v, encode_entry(e))
    redis.call('ZREM', KEYS[10], v)
    expired = expired + 1
  elseif e and e.state == 'admitted' and e.res ~= 0 then
    local r = decode(redis.call('HGET', KEYS[2], int(e.res)))
    if r.status == 'reserved' then
      redis.call('ZADD', KEYS[10], int(r.expires), v)
    else
      redis.call('ZREM', KEYS[10], v)
    end
  else
    redis.call('ZREM', KEYS[10], v)
  end
end
if #due == QUEUE_CHUNK then
  more = 1
end

-- ticks counts the pace clock's ticks from the epoch to t (µs), as
-- ticketrush.admissionTicks: floor(apm × t / 1 min) in whole milliseconds,
-- split by minutes so the product stays exact in a double.
local function ticks(apm, t)
  local ms = math.floor(t / 1000)
  local minutes = math.floor(ms / 60000)
  return minutes * apm + math.floor(apm * (ms - minutes * 60000) / 60000)
end

-- 3. Admission, as ticketrush.AdmissionsAt allows: the sliding window counts
-- the stamps after now - 60 s.
if not ev.paused and q.closed == 1 and q.done == 1 and ev.tq > 0 and q.tail > q.serving then
  redis.call('ZREMRANGEBYSCORE', KEYS[11], '-inf', int(now - 60 * US))
  local last_min = redis.call('ZCOUNT', KEYS[11], '(' .. int(now - 60 * US), '+inf')
  local active = redis.call('ZCOUNT', KEYS[10], '(' .. int(now), '+inf')
  local n = ev.apm - last_min
  if ev.max_active > 0 then
    n = math.min(n, ev.max_active - active)
  end
  -- The pace, as ticketrush.AdmissionsAt: a clock ticking apm times a
  -- minute at fixed instants; a step admits the ticks since the latest
  -- admission (a second's share for the first, a minute's after a pause).
  local pace
  if q.last <= 0 then
    pace = math.max(math.floor((ev.apm + 59) / 60), 1)
  elseif now - q.last >= 60 * US then
    pace = ev.apm
  else
    pace = math.max(ticks(ev.apm, now) - ticks(ev.apm, q.last), 0)
  end
  n = math.max(math.min(n, pace, QUEUE_CHUNK, q.tail - q.serving), 0)
  local passexp = now + ev.pass * US
  for _ = 1, n do
    local p = q.serving + 1
    local v = redis.call('HGET', KEYS[9], int(p))
    redis.call('HDEL', KEYS[9], int(p))
    local e = decode_entry(redis.call('HGET', KEYS[5], v))
    e.state, e.admitted, e.passexp = 'admitted', now, passexp
    redis.call('HSET', KEYS[5], v, encode_entry(e))
    redis.call('ZADD', KEYS[10], int(passexp), v)
    redis.call('ZADD', KEYS[11], int(now), int(p))
    q.serving = p
    q.nwait = q.nwait - 1
    q.admitted = q.admitted + 1
    admitted = admitted + 1
  end
  if admitted > 0 then
    q.last = now
  end
  if n == QUEUE_CHUNK and q.tail > q.serving then
    more = 1
  end
end
save_queue(q)
return remember({shuffled, admitted, expired, more})
