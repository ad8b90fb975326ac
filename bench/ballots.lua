-- wrk script: every request is a new voter casting one form-encoded kiosk ballot.
--
-- Environment: BENCH_PATH (the ballots URL path), BENCH_TOKEN (the kiosk's bearer token),
-- BENCH_RUN (a number 0..4294967295 unique to this wrk invocation, part of every
-- ballot_id), BENCH_PREFIX (the digit after the leading 1 of the phone number, 3..9),
-- BENCH_ENTRIES (how many entries A01..Ann the campaign has).
--
-- The voter is "1" .. prefix .. thread id (0..9) .. an 8-digit counter per thread: a
-- valid 11-digit mainland mobile number, distinct for every request of the run. Every
-- answer that is not 201 is counted (and the first few are kept) and reported by done()
-- as one JSON line on stdout, starting with "BENCH ".

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  path = os.getenv("BENCH_PATH")
  token = os.getenv("BENCH_TOKEN")
  run = tonumber(os.getenv("BENCH_RUN") or "0")
  prefix = os.getenv("BENCH_PREFIX") or "3"
  n_entries = tonumber(os.getenv("BENCH_ENTRIES") or "40")
  counter = 0
  bad = 0
  samples = ""
  headers = {}
  headers["Content-Type"] = "application/x-www-form-urlencoded"
  headers["Authorization"] = "Bearer " .. token
end

local function code(i)
  return string.format("A%02d", i % n_entries + 1)
end

function request()
  counter = counter + 1
  local voter = string.format("1%s%d%08d", prefix, tid, counter)
  local ballot_id = string.format("%08x-%04x-4000-8000-%012x", run, tid, counter)
  -- three distinct choices, varying with the counter
  local body = "ballot_id=" .. ballot_id .. "&voter_id=" .. voter
    .. "&choices=" .. code(counter) .. "&choices=" .. code(counter * 7 + 1)
    .. "&choices=" .. code(counter * 13 + 2)
  return wrk.format("POST", path, headers, body)
end

function response(status, headers, body)
  if status ~= 201 then
    bad = bad + 1
    if bad <= 3 then
      samples = samples .. status .. " " .. string.sub(body or "", 1, 160) .. " | "
    end
  end
end

function done(summary, latency, requests)
  local non201, notes = 0, ""
  for _, thread in ipairs(threads) do
    non201 = non201 + thread:get("bad")
    notes = notes .. thread:get("samples")
  end
  notes = string.gsub(notes, '[\\"%c]', " ")
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d,'
      .. ' "max_us": %d, "non201": %d, "socket_errors": %d, "samples": "%s"}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, non201,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    notes))
end
