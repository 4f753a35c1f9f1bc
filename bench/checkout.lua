-- The checkout bench's wrk script. Mode "purchase": each request buys a
-- hold of its own, as its own visitor, from a file of "id token" lines the
-- bench wrote (holds made before the load); each thread takes every
-- threads-th line, so no two requests buy the same hold. When a thread has
-- used all its holds it sends a purchase of id 0, which is refused (4xx)
-- and so counted as a failure, never as a sale. Answers are counted by
-- class, as in wrk.lua, and printed in the same report line. (Reads use
-- reads.lua.)
--
-- Arguments (after --): "purchase", then "THREADS FILE".

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  mode = args[1]
  ok, other, status5xx = 0, 0, 0
  sample = ""
  n = 0
  items = {}
  local nthreads, file = string.match(args[2], "^(%d+) (.+)$")
  nthreads = tonumber(nthreads)
  local i = 0
  for line in io.lines(file) do
    if i % nthreads == id then
      local rid, token = string.match(line, "^(%d+) (%S+)$")
      table.insert(items, { '{"reservation_id":' .. rid .. '}', token })
    end
    i = i + 1
  end
  headers = { ["Content-Type"] = "application/json" }
end

function request()
  n = n + 1
  local h = items[n]
  if h == nil then
    headers["Visitor-Token"] = "00000000-0000-4000-8000-000000000000"
    return wrk.format("POST", nil, headers, '{"reservation_id":0}')
  end
  headers["Visitor-Token"] = h[2]
  return wrk.format("POST", nil, headers, h[1])
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
