-- wrk script: GET one path (BENCH_PATH) again and again, as a crowd opening a page.
-- Every answer that is not 200 is counted (the first few kept) and reported by done() as
-- one JSON line on stdout, starting with "BENCH " (the shape of ballots.lua's, whose
-- "non201" field here counts answers other than 200).

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  path = os.getenv("BENCH_PATH")
  -- BENCH_ACCEPT_ENCODING (say "gzip"): sent as a browser would; unset, no such header.
  encoding = os.getenv("BENCH_ACCEPT_ENCODING")
  headers = {}
  if encoding and encoding ~= "" then
    headers["Accept-Encoding"] = encoding
  end
  bad = 0
  samples = ""
end

function request()
  return wrk.format("GET", path, headers)
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
    if bad <= 3 then
      samples = samples .. status .. " " .. string.sub(body or "", 1, 160) .. " | "
    end
  end
end

function done(summary, latency, requests)
  local non200, notes = 0, ""
  for _, thread in ipairs(threads) do
    non200 = non200 + thread:get("bad")
    notes = notes .. thread:get("samples")
  end
  notes = string.gsub(notes, '[\\"%c]', " ")
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d,'
      .. ' "max_us": %d, "non201": %d, "socket_errors": %d, "samples": "%s"}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, non200,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    notes))
end
