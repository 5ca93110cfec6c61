-- wrk script: POST the bodies of BENCH_BODIES_FILE (one JSON body a line) in turn, with
-- the API key and client version headers of post.lua. Each thread starts at its own
-- place in the list, so a body comes back only after the whole list went by: a token
-- is seen for the first time by the worker that gets it (bench/publickeys.py makes the
-- list longer than a worker's memo of verified tokens).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Api-Key"] = os.getenv("BENCH_API_KEY") or ""
wrk.headers["X-App-Version"] = os.getenv("BENCH_APP_VERSION") or "3.2.1"
wrk.headers["X-Sdk-Version"] = os.getenv("BENCH_SDK_VERSION") or "web/1.4.0"

local threads = 0
function setup(thread)
  thread:set("thread_index", threads)
  threads = threads + 1
end

local bodies = {}
for line in io.lines(os.getenv("BENCH_BODIES_FILE")) do
  bodies[#bodies + 1] = line
end
local n = nil

request = function()
  if n == nil then
    n = ((thread_index or 0) * 7919) % #bodies
  end
  n = n % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[n])
end
