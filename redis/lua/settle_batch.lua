-- settle_batch is group commit of purchases and cancels: a batch of them
-- for one event's holds in one script call, decided in arrival order
-- exactly as consecutive calls of purchase.lua and cancel.lua would decide
-- them, each request seeing the holds as the earlier ones left them. A
-- hold found past its expires_at is released as expired.
-- KEYS[1..NK] as in lib.lua.
-- ARGV: now (µs or ''), n, then for each request: 'p' (purchase) or 'c'
-- (cancel), reservation number, visitor.
-- Returns one "number record" or "!code" per request, in order.
local now = clock(ARGV[1])
local prev = ran_reserves()
if prev then
  return prev
end
local count = tonumber(ARGV[2])
local out = {}
local ev = load_event()
if not ev then
  for i = 1, count do
    out[i] = '!reservation_not_found'
  end
  return out
end
local holds = {} -- number -> record, as this batch left it
local sold, records = {}, {} -- purchased numbers; their number, record pairs
for i = 1, count do
  local a = 2 + (i - 1) * 3
  local op, n, visitor = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local r = holds[n]
  if not r then
    local s = redis.call('HGET', KEYS[2], n)
    if s then
      r = decode(s)
      holds[n] = r
    end
  end
  if not r or r.visitor ~= visitor then
    out[i] = '!reservation_not_found'
  elseif r.status == 'purchased' then
    out[i] = '!reservation_already_purchased'
  elseif r.status == 'cancelled' then
    if op == 'c' then
      out[i] = n .. ' ' .. encode(r)
    else
      out[i] = '!reservation_cancelled'
    end
  elseif r.status == 'expired' then
    out[i] = '!reservation_expired'
  elseif r.expires <= now then
    release(ev, n, r, 'expired', now)
    out[i] = '!reservation_expired'
  elseif op == 'c' then
    release(ev, n, r, 'cancelled', now)
    out[i] = n .. ' ' .. encode(r)
  else
    -- As purchase.lua, but the record and the holds set are written once
    -- for the whole batch, below: a purchase is final, so no later request
    -- of this batch changes the hold again, and they read it from holds.
    sold[#sold + 1] = n
    if ev.mpv > 0 then
      vhold_remove(r.visitor, n, r.amount)
    end
    r.status = 'purchased'
    r.updated = now
    local s = encode(r)
    records[#records + 1] = n
    records[#records + 1] = s
    ev.held = ev.held - r.amount
    ev.purchased = ev.purchased + r.amount
    ev.changed = true
    hold_ended(ev, r.visitor, n, false)
    out[i] = n .. ' ' .. s
  end
end
if #sold > 0 then
  bulk('ZREM', KEYS[3], sold)
  bulk('HSET', KEYS[2], records)
end
save_event(ev, now)
-- A repeat of this call (same run id) reads each settled hold back as it
-- then is: purchased and cancelled are final.
return remember_reserves(out)
