-- migrate_visitors converts one event's per-visitor data from layout 1 to
-- 2, one chunk per call: KEYS[1] (layout 1's holds, a sorted set of
-- "visitor:expires_at:number:amount" by name, expires_at zero-padded) and
-- KEYS[2] (layout 1's tickets bought, visitor -> count) move into KEYS[3]
-- (visitor -> "bought number:expires_at:amount ..."). ARGV: the chunk size,
-- then the cursor of KEYS[2]'s scan ('0' to start). Each chunk is one
-- atomic step, so a crash or a second migrating process between chunks
-- loses or doubles nothing.
-- Returns {'more', cursor} or {'done'}.
local function add(visitor, bought, entry)
  local v = redis.call('HGET', KEYS[3], visitor) or '0'
  local b, holds = string.match(v, '^(%d+)(.*)$')
  if entry then
    holds = holds .. ' ' .. entry
  end
  redis.call('HSET', KEYS[3], visitor, string.format('%d', tonumber(b) + bought) .. holds)
end

local limit = tonumber(ARGV[1])
local ms = redis.call('ZRANGE', KEYS[1], 0, limit - 1)
for _, m in ipairs(ms) do
  local visitor, x, n, a = string.match(m, '^(.+):(%d+):(%d+):(%d+)$')
  add(visitor, 0, n .. ':' .. string.format('%d', tonumber(x)) .. ':' .. a)
end
if #ms > 0 then
  redis.call('ZREM', KEYS[1], unpack(ms))
  return {'more', ARGV[2]}
end
-- HSCAN returns every field present from the scan's start to its end, and
-- a field moved (deleted) after it was returned is not returned again.
local scan = redis.call('HSCAN', KEYS[2], ARGV[2], 'COUNT', limit)
local kv = scan[2]
for i = 1, #kv, 2 do
  add(kv[i], tonumber(kv[i + 1]), nil)
  redis.call('HDEL', KEYS[2], kv[i])
end
if scan[1] == '0' then
  return {'done'}
end
return {'more', scan[1]}
