-- unclaim drops a claim made for a reserve that was refused, so the key is
-- free again as it is in the SQL backends, where a refused reserve stores
-- nothing. KEYS[1] is the visitor's claims hash; ARGV: idempotency key,
-- event id. Returns 1 when it dropped the claim.
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and string.match(v, '^%d+') == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
