-- wrk script: POST the body and API key given in the environment, with the client
-- version headers of CONTRACT section 8 (counted per platform, as real clients send).
-- BENCH_FORGED=1: a flood of forged starts instead, each a new user id with a made-up
-- signature (every one invalid, every one a new distinct user).
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Api-Key"] = os.getenv("BENCH_API_KEY") or ""
wrk.headers["X-App-Version"] = os.getenv("BENCH_APP_VERSION") or "3.2.1"
wrk.headers["X-Sdk-Version"] = os.getenv("BENCH_SDK_VERSION") or "web/1.4.0"

if os.getenv("BENCH_FORGED") == "1" then
  local n = 0
  local prefix = tostring(math.random(1, 1000000000))
  request = function()
    n = n + 1
    local body = string.format('{"userId":"forged-%s-%d","signed":"%064d"}', prefix, n, n)
    return wrk.format(nil, nil, nil, body)
  end
end
