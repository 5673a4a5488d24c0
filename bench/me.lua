-- GET /api/v1/auth/me with the bearer token in BENCH_TOKEN
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
