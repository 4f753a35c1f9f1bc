-- The checkout bench's wrk script for reads (GET of the paths given, in
-- turn) and /healthz. It defines no response() callback, so wrk hands no
-- body to Lua: a read load costs the client the same per request whatever
-- the size of the answer, and the server is measured, not the client's
-- copying. Without that callback wrk counts answers with a status of 400
-- or more (summary.errors.status) as errors; every other answer counts as
-- served (the read routes never redirect).
--
-- Arguments (after --): mode (ignored), the paths separated by spaces.

function init(args)
  paths = {}
  for p in string.gmatch(args[2], "%S+") do
    table.insert(paths, p)
  end
  n = 0
end

function request()
  n = n + 1
  return wrk.format("GET", paths[(n - 1) % #paths + 1])
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    "ticketrush-wrk ok=%d other=%d status5xx=0 requests=%d duration_us=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p99_us=%d\n",
    summary.requests - e.status, e.status, summary.requests, summary.duration,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
  if e.status > 0 then
    io.write("ticketrush-wrk-sample " .. e.status .. " answers with a status of 400 or more\n")
  end
end
