-- wrk script: a flood of forged session starts, each a new user id with a made-up
-- signature (every one invalid, every one a new distinct user).
-- BENCH_NEW_VERSIONS=1: each also with a new X-App-Version and X-Sdk-Version (issue 19:
-- the version slots and the count writer under a flood of distinct values).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Api-Key"] = os.getenv("BENCH_API_KEY") or ""
local new_versions = os.getenv("BENCH_NEW_VERSIONS") == "1"
local n = 0
local prefix = tostring(math.random(1, 1000000000))

request = function()
  n = n + 1
  if new_versions then
    wrk.headers["X-App-Version"] = string.format("junk-%s-%d", prefix, n)
    wrk.headers["X-Sdk-Version"] = string.format("sdk-%s-%d", prefix, n)
  end
  local body = string.format('{"userId":"forged-%s-%d","signed":"%064d"}', prefix, n, n)
  return wrk.format(nil, nil, nil, body)
end
