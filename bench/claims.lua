-- POST /api/v1/events/{id}/reward-requests, each request a different (player, event) pair so
-- every request is a real grant: tokens and event ids come from files named in BENCH_TOKENS and
-- BENCH_EVENTS; thread t of T takes pairs t, t+T, t+2T, ...
local tokens, events = {}, {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
for line in io.lines(os.getenv("BENCH_EVENTS")) do events[#events + 1] = line end
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "2")
local counter = tonumber(os.getenv("BENCH_OFFSET") or "0")
thread_id = 0 -- a global: setup() sets it per thread
local next_id = 0

function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
end

function request()
  local k = counter * nthreads + thread_id
  counter = counter + 1
  local p = (k % #tokens) + 1
  local e = (math.floor(k / #tokens) % #events) + 1
  return wrk.format("POST", "/api/v1/events/" .. events[e] .. "/reward-requests",
    {["Authorization"] = "Bearer " .. tokens[p]}, nil)
end
