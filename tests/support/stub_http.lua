-- Starts tests/support/stub_http.py for a spec and stops it afterwards.
--
--   local stub = require("support.stub_http").start()          -- TCP on 127.0.0.1
--   local stub = require("support.stub_http").start{ unix = path }
--   local stub = require("support.stub_http").start{ tls = { cert = c, key = k } }
--   stub.url .. "/hello"   stub.socket   stub:stop()
--   stub:said()            the next line the stub prints (routes that say when they acted)
local M = {}

local PYTHON = os.getenv("PYTHON") or "/usr/bin/python3"

local function here()
  local src = debug.getinfo(1, "S").source:sub(2)
  return src:match("^(.*)/[^/]*$") or "."
end

function M.start(opts)
  opts = opts or {}
  local cmd = string.format("exec %s %s/stub_http.py", PYTHON, here())
  if opts.unix then cmd = cmd .. " --unix '" .. opts.unix .. "'" end
  if opts.blackhole then cmd = cmd .. " --blackhole" end
  if opts.tls then cmd = cmd .. string.format(" --tls '%s' '%s'", opts.tls.cert, opts.tls.key) end
  local pipe = assert(io.popen(cmd, "r"))
  local line = pipe:read("l")
  local where, pid = (line or ""):match("^stub_http: listening on (%S+) pid (%d+)")
  assert(where, "stub_http did not start: " .. tostring(line))
  local stub = { pid = tonumber(pid), pipe = pipe }
  if opts.unix then
    stub.socket = where
    stub.url = "http://localhost"
  else
    stub.port = tonumber(where)
    stub.url = (opts.tls and "https" or "http") .. "://127.0.0.1:" .. where
  end
  function stub:said()
    return self.pipe:read("l")
  end
  function stub:stop()
    if self.pipe then
      os.execute("kill " .. self.pid .. " 2>/dev/null")
      self.pipe:close()
      self.pipe = nil
    end
  end
  return stub
end

-- A fresh path in the test temp dir.
local n = 0
function M.tmpname(tag)
  n = n + 1
  local dir = os.getenv("SESH_TEST_TMP") or "/tmp"
  return string.format("%s/transport-%d-%d-%s", dir, M.pid(), n, tag or "f")
end

function M.pid()
  local f = io.open("/proc/self/stat")
  local pid = f and f:read("n") or 0
  if f then f:close() end
  return pid
end

return M
