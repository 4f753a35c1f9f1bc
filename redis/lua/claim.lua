-- claim binds a visitor's Idempotency-Key to one event, on Redis Cluster
-- only, where the key's record lives in the event's slot and so cannot see
-- other events (see reserve.go). KEYS[1] is the visitor's claims hash;
-- ARGV: idempotency key, event id, run id. The claim is stored as
-- "event run", so that the same call sent again (after a lost reply)
-- still answers 1.
-- Returns 1 when this call made the claim, 0 when the key was already
-- claimed for this event, -1 when it was claimed for another event.
local mine = ARGV[2] .. ' ' .. ARGV[3]
if redis.call('HSETNX', KEYS[1], ARGV[1], mine) == 1 then
  return 1
end
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v == mine then
  return 1
end
if string.match(v, '^%d+') == ARGV[2] then
  return 0
end
return -1
