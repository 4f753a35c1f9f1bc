-- update_event sets some of an event's settings. KEYS[1..NK] as in lib.lua.
-- ARGV: now (µs or ''), drop ('1' when the waiting room is removed: its
-- queue goes with it), k, then k field/value pairs, then the names of the
-- fields to answer with. Setting the same values twice gives the same
-- event, so it keeps no run record.
-- Returns {'ok', values…} or {'!event_not_found'}.
local now = clock(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'!event_not_found'}
end
local k = tonumber(ARGV[3])
local args = {'updated_at', int(now)}
for i = 1, 2 * k do
  args[#args + 1] = ARGV[3 + i]
end
redis.call('HSET', KEYS[1], unpack(args))
if ARGV[2] == '1' then
  redis.call('UNLINK', KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11])
end
local fields = {}
for i = 4 + 2 * k, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
local v = redis.call('HMGET', KEYS[1], unpack(fields))
local out = {'ok'}
for i = 1, #fields do
  out[i + 1] = v[i] or ''
end
return out
