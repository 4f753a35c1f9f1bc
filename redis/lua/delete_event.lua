-- delete_event removes an event that never had a reservation, with its
-- queue. KEYS[1..NK] as in lib.lua. ARGV: none.
-- Returns 'ok' or "!code".
local prev = ran()
if prev then
  return prev
end
local seq = redis.call('HGET', KEYS[1], 'seq')
if not seq then
  return '!event_not_found'
end
if tonumber(seq) > 0 then
  return remember('!event_has_reservations')
end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7],
  KEYS[8], KEYS[9], KEYS[10], KEYS[11])
return remember('ok')
