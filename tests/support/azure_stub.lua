-- Starts tests/support/azure_stub.py (a stand-in for Azure's pool API and
-- Entra sign-in) for a spec, and talks to its control endpoints.
--
--   local stub = require("support.azure_stub").start()
--   stub.url                          http://127.0.0.1:PORT
--   stub:config{ tokens = { "t" } }   accept a static bearer token
--   stub:script{ method = "POST", path = "code/execute", responses = { { status = 503 } } }
--   stub:log()                        the requests seen, oldest first
--   stub:count(method, path_pattern)  how many of them matched
--   stub:clear()   forget scripts and the log      stub:reset()  forget everything
--   stub:stop()
local json = require "sessions.json"
local http = require "sessions.http"
local util = require "support.util"

local M = {}
local PYTHON = os.getenv("PYTHON") or "/usr/bin/python3"

local function here()
  local src = debug.getinfo(1, "S").source:sub(2)
  return src:match("^(.*)/[^/]*$") or "."
end

local Stub = {}
Stub.__index = Stub

function M.start()
  local pipe = assert(io.popen(("exec %s %s/azure_stub.py"):format(PYTHON, here()), "r"))
  local line = pipe:read("l")
  local port, pid = (line or ""):match("^azure_stub: listening on (%d+) pid (%d+)")
  assert(port, "azure_stub did not start: " .. tostring(line))
  local stub = setmetatable({ pid = tonumber(pid), pipe = pipe, port = tonumber(port),
                              url = "http://127.0.0.1:" .. port }, Stub)
  stub.client = http.client{ timeout = 10, connect_timeout = 5 }
  return stub
end

function Stub:control(what, arg)
  local res = self.client:request{
    method = arg and "POST" or "GET", url = self.url .. "/_control/" .. what,
    body = arg and json.encode(arg) or nil,
    headers = { ["Content-Type"] = "application/json" },
  }
  assert(res.status == 200, "stub control " .. what .. ": " .. tostring(res.status))
  return json.decode(res.body)
end

function Stub:config(t) return self:control("config", t) end
function Stub:script(t) return self:control("script", t) end
function Stub:reset() return self:control("reset", {}) end
function Stub:clear() return self:control("clear", {}) end
function Stub:log() return self:control("log") end

function Stub:count(method, pattern)
  local n = 0
  for _, r in ipairs(self:log()) do
    if (method == nil or r.method == method) and (pattern == nil or r.path:match(pattern)) then n = n + 1 end
  end
  return n
end

function Stub:stop()
  if self.pipe then
    self.client:close()
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    self.pipe:close()
    self.pipe = nil
  end
end

-- A temp directory for a spec's files.
local n = 0
function M.tmpdir(tag)
  n = n + 1
  local base = os.getenv("SESH_TEST_TMP") or "/tmp"
  local dir = ("%s/sessions-%s-%d-%d"):format(base, tag or "t", os.time(), n)
  os.execute("mkdir -p '" .. dir .. "'")
  return dir
end

-- A fake `az` in a fresh directory: prints stdout, writes stderr, exits rc,
-- and counts its calls in dir/calls.
function M.fake_az(t)
  local dir = M.tmpdir("az")
  local path = dir .. "/az"
  local f = assert(io.open(path, "w"))
  local function q(s) return util.quote(s or "") end
  f:write("#!/bin/sh\n",
          "echo \"$*\" >> ", q(dir .. "/calls"), "\n",
          "printf '%s' ", q(t.stdout), "\n",
          "printf '%s' ", q(t.stderr), " >&2\n",
          "exit ", tostring(t.rc or 0), "\n")
  f:close()
  os.execute("chmod +x " .. q(path))
  return path, dir
end

M.read = util.read

return M
