-- create_event writes a new event's hash. KEYS[1] is the event hash; ARGV:
-- now (µs, or '' for the server's clock), name, ticket_quantity,
-- hold_seconds, max_per_visitor, sale_starts_at (µs or '').
-- Returns created_at.
local now = clock(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('event already exists: ' .. KEYS[1])
end
redis.call('HSET', KEYS[1],
  'name', ARGV[2],
  'ticket_quantity', ARGV[3],
  'capacity', ARGV[3],
  'hold_seconds', ARGV[4],
  'max_per_visitor', ARGV[5],
  'sale_starts_at', ARGV[6],
  'created_at', int(now),
  'updated_at', int(now),
  'seq', 0, 'held', 0, 'purchased', 0, 'expired', 0, 'cancelled', 0)
return int(now)
