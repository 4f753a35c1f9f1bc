-- create_first adds an event id to the event index only while the index
-- is empty, so that of several processes seeding one empty database exactly
-- one creates its event. KEYS[1] is the index; ARGV[1] the new id.
-- Returns 1 when the id was added.
if redis.call('ZCARD', KEYS[1]) > 0 then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1])
return 1
