-- entry reads a visitor's queue entry with its state as of now (read only).
-- KEYS[1..NK] as in lib.lua. ARGV: now (µs or ''), visitor.
-- Returns "state record" or "!code".
local now = clock(ARGV[1])
local ev = load_event()
if not ev then
  return '!event_not_found'
elseif not ev.wr then
  return '!waiting_room_not_found'
end
local s = redis.call('HGET', KEYS[5], ARGV[2])
if not s then
  return '!not_in_queue'
end
return entry_state(decode_entry(s), now) .. ' ' .. s
