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

-- response and done: bench/wrk_report.lua, appended by the bench.
