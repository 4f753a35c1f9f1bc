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

-- response and done: bench/wrk_report.lua, appended by the bench.
