-- create_event writes a new event's hash. KEYS[1] is the event hash; ARGV:
-- now (µs, or '' for the server's clock), name, ticket_quantity,
-- hold_seconds, max_per_visitor, sale_starts_at (µs or ''), max_per_order,
-- hidden ('1' or '0'), then the waiting room: wr ('1' or '0'), wr_apm,
-- wr_max_active, wr_pass, wr_preopen (µs or ''), wr_bits, wr_paused.
-- Returns created_at. The id is the caller's alone (INCR), so a hash that
-- already exists was written by an earlier run of this same call, which a
-- client may send again after a lost reply: it answers as that run did.
local existing = redis.call('HGET', KEYS[1], 'created_at')
if existing then
  return tonumber(existing)
end
local now = clock(ARGV[1])
redis.call('HSET', KEYS[1],
  'name', ARGV[2],
  'ticket_quantity', ARGV[3],
  'capacity', ARGV[3],
  'hold_seconds', ARGV[4],
  'max_per_visitor', ARGV[5],
  'sale_starts_at', ARGV[6],
  'max_per_order', ARGV[7],
  'hidden', ARGV[8],
  'sale_closed', '0',
  'wr', ARGV[9], 'wr_apm', ARGV[10], 'wr_max_active', ARGV[11], 'wr_pass', ARGV[12],
  'wr_preopen', ARGV[13], 'wr_bits', ARGV[14], 'wr_paused', ARGV[15],
  'created_at', int(now),
  'updated_at', int(now),
  'seq', 0, 'held', 0, 'purchased', 0, 'expired', 0, 'cancelled', 0)
return int(now)
