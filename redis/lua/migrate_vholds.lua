-- migrate_vholds converts one event's visitor holds from layout 1 to 2: a
-- chunk of the sorted set KEYS[1] ("visitor:expires_at:number:amount" by
-- name, expires_at zero-padded) moves into the hash KEYS[2] (visitor ->
-- "number:expires_at:amount ..."). ARGV: the chunk size. Each chunk is one
-- atomic step, so a crash or a second migrating process between chunks
-- loses or doubles nothing. Returns how many members are left.
local ms = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
for _, m in ipairs(ms) do
  local visitor, x, n, a = string.match(m, '^(.+):(%d+):(%d+):(%d+)$')
  local entry = n .. ':' .. string.format('%d', tonumber(x)) .. ':' .. a
  local list = redis.call('HGET', KEYS[2], visitor)
  if list then
    entry = list .. ' ' .. entry
  end
  redis.call('HSET', KEYS[2], visitor, entry)
end
if #ms > 0 then
  redis.call('ZREM', KEYS[1], unpack(ms))
end
return redis.call('ZCARD', KEYS[1])
