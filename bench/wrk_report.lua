-- wrk script of the HTTP benchmark (bench/serve_bench.mjs). Optional args
-- PREFIX COUNT make each request GET PREFIX%06d with a rotating number (so
-- the detail endpoint is not served from one hot row). done() prints one
-- machine-readable line: "MWBENCH {json}".
local prefix, count, n = nil, 0, 0

function init(args)
  if #args >= 2 then
    prefix = args[1]
    count = tonumber(args[2])
    n = math.random(0, count - 1)
  end
end

function request()
  if prefix == nil then return wrk.format() end
  n = (n + 1) % count
  return wrk.format("GET", string.format("%s%06d", prefix, n))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'MWBENCH {"requests":%d,"duration_us":%d,"bytes":%d,"errors_status":%d,"errors_connect":%d,' ..
    '"errors_read":%d,"errors_write":%d,"errors_timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
