-- GET /api/v1/events as a player (BENCH_TOKEN)
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
