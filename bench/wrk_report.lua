-- The answer counting every ticketrush bench script ends with: the bench
-- appends this file to each script (bench/wrk.go, withReport), so every load
-- counts answers by class the same way (only 2xx count as served) and prints
-- one line the bench reads. A script defines `threads` (the threads setup
-- saw) before this part.

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
