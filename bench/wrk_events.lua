-- The load script for a reserve load spread over several events: like
-- wrk.lua, every request is its own visitor (a fresh Visitor-Token), and
-- each request names the next event in turn, so the events share the load
-- uniformly whatever the connection count. Each thread starts at another
-- event, so the threads' turns interleave.
--
-- Arguments (after --): token prefix (24 characters), the event ids
-- separated by commas, the amount.

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  prefix = args[1]
  bodies = {}
  for ev in string.gmatch(args[2], "%d+") do
    table.insert(bodies, string.format('{"event_id":%s,"amount":%s}', ev, args[3]))
  end
  n = 0
  turn = id % #bodies
  ok, other, status5xx = 0, 0, 0
  sample = ""
  headers = { ["Content-Type"] = "application/json" }
end

function request()
  n = n + 1
  turn = turn % #bodies + 1
  headers["Visitor-Token"] = string.format("%s%04x%08x", prefix, id, n)
  return wrk.format("POST", nil, headers, bodies[turn])
end

function response(status, _, resp)
  if status >= 200 and status < 300 then
    ok = ok + 1
    return
  end
  other = other + 1
  if status >= 500 then status5xx = status5xx + 1 end
  if sample == "" then
    sample = status .. " " .. string.sub(resp or "", 1, 300)
  end
end

function done(summary, latency, _)
  local sums = { ok = 0, other = 0, status5xx = 0 }
  local first = ""
  for _, t in ipairs(threads) do
    for k in pairs(sums) do sums[k] = sums[k] + t:get(k) end
    if first == "" then first = t:get("sample") end
  end
  local e = summary.errors
  io.write(string.format(
    "ticketrush-wrk ok=%d other=%d status5xx=%d requests=%d duration_us=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p99_us=%d\n",
    sums.ok, sums.other, sums.status5xx, summary.requests, summary.duration,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
  io.write("ticketrush-wrk-sample " .. (first:gsub("%s+", " ")) .. "\n")
end
