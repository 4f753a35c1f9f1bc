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

-- response and done: bench/wrk_report.lua, appended by the bench.
