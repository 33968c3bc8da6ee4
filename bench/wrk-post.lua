-- wrk script of `npm run bench`: POST /worker, one task per request, each with an identifier of its own.
-- Arguments (after `--`): identifier prefix, endpoints as a JSON list, payload filler length.
-- `tid` is a global that setup() sets in each thread's own environment.
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local prefix, endpoints, filler
local counter = 0
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  prefix = args[1] .. "-" .. tid .. "-"
  endpoints = args[2]
  filler = string.rep("x", tonumber(args[3]))
end

function request()
  counter = counter + 1
  local body = '{"identifier":"' .. prefix .. counter .. '","payload":{"sleep":0,"data":"' .. filler
    .. '","n":' .. counter .. '},"endpoints":' .. endpoints .. '}'
  return wrk.format("POST", "/worker", headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
