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

-- response and done: bench/wrk_report.lua, appended by the bench.
