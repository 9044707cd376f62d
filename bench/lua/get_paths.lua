-- GET one of several paths in turn (read from the file named by BENCH_PATHS).
local paths = {}
local i = 0

function init(args)
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
  for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
end

function request()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
