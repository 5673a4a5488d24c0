-- GET the path wrk was given as a different player each request: tokens come one per line from
-- the file named in BENCH_TOKENS; thread t of T takes tokens t, t+T, t+2T, ... round and round
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "2")
local counter = 0
thread_id = 0 -- a global: setup() sets it per thread
local next_id = 0

function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
end

function request()
  local k = counter * nthreads + thread_id
  counter = counter + 1
  return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. tokens[(k % #tokens) + 1]}, nil)
end
