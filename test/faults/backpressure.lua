-- wrk script of the backpressure test: POST /worker, one task per request (identifier of its own, the
-- handler sleeping `sleep` seconds), counting the answers: 2xx, 503 backlog_full with Retry-After, other.
-- Arguments (after `--`): identifier prefix, endpoints as a JSON list, handler sleep in seconds.
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local prefix, endpoints, sleep
local counter = 0
local headers = { ["Content-Type"] = "application/json" }
ok, full, full_with_retry_after, other = 0, 0, 0, 0

function init(args)
  prefix = args[1] .. "-" .. tid .. "-"
  endpoints = args[2]
  sleep = args[3]
end

function request()
  counter = counter + 1
  local body = '{"identifier":"' .. prefix .. counter .. '","payload":{"sleep":' .. sleep .. ',"n":' .. counter
    .. '},"endpoints":' .. endpoints .. '}'
  return wrk.format("POST", "/worker", headers, body)
end

function response(status, hdrs, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  elseif status == 503 then
    full = full + 1
    if hdrs["Retry-After"] ~= nil and string.find(body, '"backlog_full"', 1, true) then
      full_with_retry_after = full_with_retry_after + 1
    end
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local sums = { ok = 0, full = 0, full_with_retry_after = 0, other = 0 }
  for _, t in ipairs(threads) do
    for k, _ in pairs(sums) do sums[k] = sums[k] + t:get(k) end
  end
  local e = summary.errors
  io.write(string.format('WRK_RESULT {"requests":%d,"duration_us":%d,"ok":%d,"full":%d,"full_with_retry_after":%d,"other":%d,'
    .. '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, sums.ok, sums.full, sums.full_with_retry_after, sums.other,
    e.connect, e.read, e.write, e.timeout))
end
