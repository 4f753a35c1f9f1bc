-- The load script of ticketrush bench --queue. Two modes:
--
--   join: POST the path with body "{}", each request a new visitor (a fresh
--         Visitor-Token made of a per-run prefix, the thread and a counter).
--   poll: GET the path as visitors who joined already: tokens prefix +
--         "0000" + index for index 1..pool, taken in turn, each thread
--         starting at a different place.
--
-- Answers are counted by class (only 2xx count as served) and printed in
-- the same report line as the reserve bench's script, which the bench reads.
--
-- Arguments (after --): mode, token prefix (24 characters), pool size
-- (poll; unused by join), wrk's thread count (a thread's script cannot see
-- the others).

local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  mode = args[1]
  prefix = args[2]
  local n = tonumber(args[3]) or 0
  nthreads = tonumber(args[4]) or 1
  sent = 0
  ok, other, status5xx = 0, 0, 0
  sample = ""
  headers = {}
  if mode == "join" then
    headers["Content-Type"] = "application/json"
    body = "{}"
    method = "POST"
  else
    method = "GET"
    pool = n
    cursor = math.floor((id - 1) * pool / nthreads)
  end
end

function request()
  if mode == "join" then
    sent = sent + 1
    headers["Visitor-Token"] = string.format("%s%04x%08x", prefix, id, sent)
    return wrk.format(method, nil, headers, body)
  end
  cursor = cursor % pool + 1
  headers["Visitor-Token"] = string.format("%s0000%08x", prefix, cursor)
  return wrk.format(method, nil, headers, nil)
end

function response(status, headers_, resp)
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
