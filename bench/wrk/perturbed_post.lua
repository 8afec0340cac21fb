-- wrk script: POST a JSON body that differs on every request (cache misses by construction).
--
-- Usage (bench/run.py builds the arguments):
--   wrk -t T -c C -d D -s bench/wrk/perturbed_post.lua URL -- PATH TEMPLATE BASE NTHREADS OFFSET
--
-- TEMPLATE is a file holding the request body with exactly one placeholder "@V@" where the
-- first feature of the first row goes. BASE is that feature's real value. Each request sends
-- BASE + k * 1e-12 with k = OFFSET + counter * NTHREADS + thread_id, so no two requests of a run
-- share a body (both our/bare {"instances": ...} bodies and V2 {"inputs": [...]} bodies use it).
-- OFFSET differs per wrk run, so repeats and later points never resend an earlier body either.
--
-- done() prints one machine-readable line, parsed by bench/run.py:
--   BENCH_RESULT {"requests":..,"duration_us":..,"bytes":..,"p50_us":..,"p99_us":..,...}

local next_id = 0

function setup(thread)
   thread:set("tid", next_id)
   next_id = next_id + 1
end

local path, prefix, suffix, base, nthreads, offset
local counter = 0
local headers = { ["Content-Type"] = "application/json" }

function init(args)
   path = args[1]
   local f = assert(io.open(args[2], "rb"))
   local template = f:read("*a")
   f:close()
   local i, j = string.find(template, "@V@", 1, true)
   assert(i, "template has no @V@ placeholder")
   prefix = string.sub(template, 1, i - 1)
   suffix = string.sub(template, j + 1)
   base = tonumber(args[3])
   nthreads = tonumber(args[4])
   offset = tonumber(args[5]) or 0
   -- thread ids come from setup(); the main state (used by done()) has none
   if tid == nil then tid = 0 end
end

function request()
   counter = counter + 1
   local k = offset + counter * nthreads + tid
   local body = prefix .. string.format("%.17g", base + k * 1e-12) .. suffix
   return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d,'
      .. '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.mean, latency.max,
      e.connect, e.read, e.write, e.status, e.timeout))
end
