-- POST a JSON body to one of several paths; "{n}" in the body becomes a per-request counter
-- (unique measured_at seconds and Idempotency-Key values), so every request stores a new row.
-- Paths and the body template come from files named by the environment (see bench/run.py).
local counter = 0
local paths = {}
local template = ""
local thread_id = 0
local key_prefix = "bench-"

function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
end

function init(args)
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
  for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
  local f = io.open(os.getenv("BENCH_BODY")); template = f:read("*a"); f:close()
  counter = id * 100000000
  -- A run of its own prefix: a key used by an earlier run with another body would be a 409.
  key_prefix = os.getenv("BENCH_KEY_PREFIX") or "bench-"
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local path = paths[(counter % #paths) + 1]
  local body = template:gsub("{n}", tostring(counter))
  wrk.headers["Idempotency-Key"] = key_prefix .. counter
  return wrk.format(nil, path, nil, body)
end
