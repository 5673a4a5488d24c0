-- GET /api/v1/events/reward-requests as the admin (BENCH_TOKEN): the request history, a read
-- that always goes to a reward worker (bench/export_memory.sh's background load)
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
