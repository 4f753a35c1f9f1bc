-- join adds a batch of visitors to an event's queue (group commit).
-- KEYS[1..NK] as in lib.lua. ARGV: now (µs or ''), n, then for each
-- request: visitor, challenge.
-- Returns one answer per request: "+ entry" (a new entry), "= entry" (the
-- visitor's live entry, unchanged), or "!code".
local now = clock(ARGV[1])
local prev = ran()
if prev then
  return prev
end
local count = tonumber(ARGV[2])
local out = {}
-- A refusal of the whole batch writes nothing and needs no run record.
local function all(code)
  for i = 1, count do
    out[i] = code
  end
  return out
end
local ev = load_event()
if not ev then
  return all('!event_not_found')
elseif not ev.wr then
  return all('!waiting_room_not_found')
elseif ev.closed then
  return all('!sale_closed')
elseif (ev.preopen and now < ev.preopen) or (not ev.preopen and ev.sale and now < ev.sale) then
  return all('!queue_not_open')
end
local q = load_queue()
close_prequeue(ev, q, now)
for i = 1, count do
  local visitor, challenge = ARGV[1 + 2 * i], ARGV[2 + 2 * i]
  local s = redis.call('HGET', KEYS[5], visitor)
  local old = s and decode_entry(s)
  if old and entry_state(old, now) ~= 'expired' then
    out[i] = '= ' .. s
  elseif old and challenge ~= '' and old.challenge == challenge then
    out[i] = '!challenge_failed'
  else
    local e = {attempt = 1, pos = 0, joined = now, admitted = 0, passexp = 0, res = 0,
      challenge = challenge}
    if old then
      e.attempt = old.attempt + 1
      redis.call('ZREM', KEYS[10], visitor)
    end
    if q.closed == 0 then
      e.state = 'prequeue'
      redis.call('RPUSH', KEYS[7], visitor)
      q.npre = q.npre + 1
    else
      q.next = q.next + 1
      e.state, e.pos = 'waiting', q.next
      redis.call('HSET', KEYS[9], int(e.pos), visitor)
      q.tail = math.max(q.tail, e.pos)
      q.nwait = q.nwait + 1
    end
    local rec = encode_entry(e)
    redis.call('HSET', KEYS[5], visitor, rec)
    out[i] = '+ ' .. rec
  end
end
save_queue(q)
return remember(out)
