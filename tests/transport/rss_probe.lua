-- Run by stream_spec.lua in a fresh host: one big transfer, then the peak RSS.
--   sesh rss_probe.lua download|progress|progress-up|progress-par|upload|multipart URL PATH
-- prints "VmHWM <kB>" after the transfer.
local http = require "sessions.http"
local mode, url, path = arg[1], arg[2], arg[3]
local c = http.client{ timeout = 300 }
local res
if mode == "download" then
  res = c:request{ url = url, output_file = path, progress = false }
  assert(res.body == nil, "body kept in memory")
elseif mode == "progress" then           -- progress left to its default
  res = c:request{ url = url, output_file = path }
elseif mode == "progress-up" then
  res = c:request{ url = url, body_file = path }
elseif mode == "progress-par" then       -- three downloads at once: one summed bar
  local fns = {}
  for i = 1, 3 do
    fns[i] = function() return c:request{ url = url, output_file = path .. i } end
  end
  local results = http.run(fns)
  for i = 1, 3 do os.remove(path .. i) end
  res = results[1]
elseif mode == "upload" then
  res = c:request{ method = "POST", url = url, body_file = path, progress = false }
elseif mode == "multipart" then
  res = c:request{ url = url, multipart = { { name = "file", file = path } }, progress = false }
else
  error("mode: download, upload or multipart")
end
assert(res.status == 200, "status " .. res.status)
for line in io.lines("/proc/self/status") do
  local kb = line:match("^VmHWM:%s*(%d+)")
  if kb then print("VmHWM " .. kb) end
end
