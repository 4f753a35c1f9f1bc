-- unclaim drops a claim made for a reserve that was refused, so the key is
-- free again as it is in the SQL backends, where a refused reserve stores
-- nothing. KEYS[1] is the visitor's claims hash; ARGV: idempotency key,
-- event id. Returns 1 when it dropped the claim.
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
