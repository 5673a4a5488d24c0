-- The HTTP part of bench/soak.sh: a fixed mix of reads, claims and progress reports, as players
-- and a game server would send them. Files named by the environment, one entry per line:
-- SOAK_TOKENS (player access tokens), SOAK_IDS (the same players' ids, same order), SOAK_EVENTS
-- (event ids); SOAK_GS_TOKEN is a GAME_SERVER token, SOAK_RUN a run tag that keeps progress keys
-- unique across runs. Out of every 10 requests: 3 GET /events, 2 GET /auth/me, 1 GET
-- /events/reward-requests/me, 1 GET /events/{id}, 2 claims (a fresh (player, event) pair each
-- until the pairs run out, then refusals 409 ALREADY_CLAIMED), 1 progress report (one LOGIN fact,
-- a new idempotency key each); SOAK_CLAIM_OFFSET skips the pairs of an earlier run. done() prints one RESULT line with the answers per status class.
local tokens, ids, events = {}, {}, {}
for line in io.lines(os.getenv("SOAK_TOKENS")) do tokens[#tokens + 1] = line end
for line in io.lines(os.getenv("SOAK_IDS")) do ids[#ids + 1] = line end
for line in io.lines(os.getenv("SOAK_EVENTS")) do events[#events + 1] = line end
local gs = "Bearer " .. os.getenv("SOAK_GS_TOKEN")
local run = os.getenv("SOAK_RUN") or "soak"
local nthreads = tonumber(os.getenv("SOAK_THREADS") or "1")
local claim_offset = tonumber(os.getenv("SOAK_CLAIM_OFFSET") or "0") -- pairs another run took

thread_id = 0 -- globals: setup() sets them per thread, done() reads them back
counts = {}
local threads, next_id = {}, 0
local n, claims = 0, 0

function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
  threads[#threads + 1] = thread
end

local function auth(i) return {["Authorization"] = "Bearer " .. tokens[(i % #tokens) + 1]} end

function request()
  n = n + 1
  local k, slot = n * nthreads + thread_id, n % 10
  if slot <= 2 then
    return wrk.format("GET", "/api/v1/events", auth(k))
  elseif slot <= 4 then
    return wrk.format("GET", "/api/v1/auth/me", auth(k))
  elseif slot == 5 then
    return wrk.format("GET", "/api/v1/events/reward-requests/me?limit=20", auth(k))
  elseif slot == 6 then
    return wrk.format("GET", "/api/v1/events/" .. events[(k % #events) + 1], auth(k))
  elseif slot <= 8 then
    -- pair c of this thread: player c mod P, event c div P (so a player's claims spread in time)
    local c = claim_offset + claims * nthreads + thread_id
    claims = claims + 1
    local e = (math.floor(c / #tokens) % #events) + 1
    return wrk.format("POST", "/api/v1/events/" .. events[e] .. "/reward-requests", auth(c), nil)
  end
  local body = string.format(
    '{"facts":[{"userId":"%s","type":"LOGIN","occurredAt":"%s","idempotencyKey":"%s-%d-%d"}]}',
    ids[(k % #ids) + 1], os.date("!%Y-%m-%dT%H:%M:%SZ"), run, thread_id, n)
  return wrk.format("POST", "/api/v1/events/progress",
    {["Authorization"] = gs, ["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  local class = math.floor(status / 100) .. "xx"
  if status == 401 or status == 409 or status == 429 or status == 500 or status == 503 or status == 504 then
    class = tostring(status)
  end
  counts[class] = (counts[class] or 0) + 1
end

done = function(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for k, v in pairs(c) do total[k] = (total[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(total) do parts[#parts + 1] = k .. "=" .. v end
  table.sort(parts)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT requests=%d rps=%.0f p50_ms=%.3f p99_ms=%.3f errors=%d %s\n", summary.requests,
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    errors, table.concat(parts, " ")))
end
