-- The load script ticketrush bench gives wrk. Every request with a body is
-- its own visitor: a fresh Visitor-Token (a UUID made of a per-run prefix,
-- the thread and a counter), so no per-visitor rule ever shapes the load.
-- Answers are counted by class, so that only 2xx count as served, and the
-- counts are printed in one line the bench reads.
--
-- Arguments (after --): method, body ("" for none), token prefix (24
-- characters: "xxxxxxxx-xxxx-4xxx-8xxx-").

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  method = args[1]
  body = args[2]
  if body == "" then body = nil end
  prefix = args[3]
  n = 0
  ok, other, status5xx = 0, 0, 0
  sample = ""
  headers = {}
  if body then headers["Content-Type"] = "application/json" end
end

function request()
  if body then
    n = n + 1
    headers["Visitor-Token"] = string.format("%s%04x%08x", prefix, id, n)
  end
  return wrk.format(method, nil, headers, body)
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
