-- wrk script for the OCSP load benchmark (benchmarks/load_bench.py).
--
--   wrk ... -s ocsp_load.lua URL -- MODE REQUESTS [EXPECTED|-] [count]
--
-- MODE "post": REQUESTS holds DER request bodies, POSTed to the URL's path.
-- MODE "get": REQUESTS holds request paths (RFC 6960 A.1 GET), one per record.
-- MODE "static-post"/"static-get": REQUESTS holds paths; POST sends an empty
--   body to them (nginx serving stored bytes).
-- Records are "<length>\n<bytes>", taken round-robin per connection thread.
--
-- A checking run looks at every response: HTTP 200, and either byte-equal to
-- one of the EXPECTED bodies (pre-signed responses verified beforehand) or,
-- without EXPECTED ("-"), an OCSPResponse whose responseStatus is successful.
-- With "count" the script defines no response() at all, so wrk does not
-- hand each response to Lua (that callback can cost wrk more CPU than the
-- server spends answering): the timed runs only send and count, wrk itself
-- counting non-2xx/3xx answers and errors, and the harness checks bodies in
-- runs of their own before and after them.
-- done() prints one JSON line with wrk's figures and the check counters.

local function read_records(path)
  local f = assert(io.open(path, "rb"))
  local out = {}
  while true do
    local header = f:read("*l")
    if not header then break end
    local n = tonumber(header)
    out[#out + 1] = f:read(n)
  end
  f:close()
  return out
end

-- wrk's default resolve() tests each address with a connect-and-close.
-- `openssl ocsp` (3.0) then spins reading that closed socket and never
-- accepts another connection, so take the address without the test.
function wrk.resolve(host, service)
  wrk.addrs = wrk.lookup(host, service)
end

local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  threads[#threads + 1] = thread
end

function init(args)
  mode = args[1]
  local records = read_records(args[2])
  expected = nil
  if args[3] and args[3] ~= "-" then
    expected = {}
    for _, body in ipairs(read_records(args[3])) do expected[body] = true end
  end
  requests = {}
  for i, record in ipairs(records) do
    if mode == "post" then
      requests[i] = wrk.format("POST", wrk.path, {["Content-Type"] = "application/ocsp-request"}, record)
    elseif mode == "get" or mode == "static-get" then
      requests[i] = wrk.format("GET", record)
    else
      requests[i] = wrk.format("POST", record, {["Content-Type"] = "application/ocsp-request"}, "")
    end
  end
  -- Threads start at different offsets so they do not walk in step.
  index = (id * 7919) % #requests
  ok, bad_status, bad_body = 0, 0, 0
  -- wrk asks for response() after init(): defined only when checking.
  if args[4] ~= "count" then response = check_response end
end

function request()
  index = index % #requests + 1
  return requests[index]
end

local function successful(body)
  -- OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, ... }
  local second = body:byte(2)
  if not second then return false end
  local offset = 3
  if second >= 0x80 then offset = 3 + (second - 0x80) end
  return body:sub(offset, offset + 2) == "\10\1\0"
end

function check_response(status, headers, body)
  if status ~= 200 then
    bad_status = bad_status + 1
  elseif expected then
    if expected[body] then ok = ok + 1 else bad_body = bad_body + 1 end
  elseif successful(body) then
    ok = ok + 1
  else
    bad_body = bad_body + 1
  end
end

function done(summary, latency, requests_)
  local checked_ok, checked_status, checked_body = 0, 0, 0
  for _, thread in ipairs(threads) do
    checked_ok = checked_ok + thread:get("ok")
    checked_status = checked_status + thread:get("bad_status")
    checked_body = checked_body + thread:get("bad_body")
  end
  local e = summary.errors
  io.write(string.format(
    '{"duration_us": %d, "requests": %d, "bytes": %d, "p50_us": %d, "p90_us": %d, '
      .. '"p99_us": %d, "max_us": %d, "ok": %d, "bad_status": %d, "bad_body": %d, '
      .. '"connect_errors": %d, "read_errors": %d, "write_errors": %d, '
      .. '"status_errors": %d, "timeouts": %d}\n',
    summary.duration, summary.requests, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    checked_ok, checked_status, checked_body,
    e.connect, e.read, e.write, e.status, e.timeout))
end
