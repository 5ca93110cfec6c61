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

-- BENCH_RECONNECT_EVERY=N: every Nth request of a connection asks the server to close
-- it (Connection: close), so the clients reconnect as behind a proxy that recycles its
-- upstream connections (bench/serving.py's steadiness check).
local every = tonumber(os.getenv("BENCH_RECONNECT_EVERY") or "0")
if every > 0 and os.getenv("BENCH_FORGED") ~= "1" then
  local sent = 0
  local closing = {}
  for name, value in pairs(wrk.headers) do closing[name] = value end
  closing["Connection"] = "close"
  request = function()
    sent = sent + 1
    if sent % every == 0 then
      return wrk.format(nil, nil, closing, nil)
    end
    return wrk.format(nil, nil, nil, nil)
  end
end
