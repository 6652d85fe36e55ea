-- support/pool.lua — starts a real sesh-pool for a spec, and talks to it.
--
--   local pool = require("support.pool").start{ args = {...}, socket = false,
--                                              user = 65534,    -- user: a pool that is not root
--                                              prefix = {...},   -- words the pool is run through
--                                              ca_file = PATH } -- an https pool (--tls-cert): trust this CA
--   pool.endpoint, pool.token, pool.token_file, pool.state_dir, pool.pid, pool.line
--   pool:session{...}            sessions.new with endpoint and token filled in
--   pool:request{ method, path, query = {...} | api_version, identifier, headers,
--                 body, json, multipart, auth = false, raw_path }   -> res
--   pool:log()                   the pool's log so far (stderr)
--   pool:alive()                 the process still runs
--   pool:stop()                  SIGTERM, wait; returns true when it exited in time
--
-- The binary is $SESH_POOL_BIN, else $SESH_BUILD/bin/sesh-pool (build/ by default),
-- so the same specs run against a sanitizer build; $SESH_POOL_ARGS (words) are added
-- to every pool's arguments, so the same specs run with --no-fork-server, and
-- $SESH_POOL_USER (a uid) runs every pool as that user, as `user` does.
local http = require "sessions.http"
local cjson = require "cjson"
local util = require "support.util"

local M = {}
local Pool = {}
Pool.__index = Pool

-- Pools a failing spec did not stop are stopped when the Lua state closes.
local started = setmetatable({}, { __mode = "k" })
M._reaper = setmetatable({}, { __gc = function()
  for pool in pairs(started) do
    if pool.pid then os.execute("kill -TERM " .. pool.pid .. " 2>/dev/null") end
  end
end })

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

local quote, read = util.quote, util.read

local function exists(path)    -- any kind of file, sockets included
  return os.execute("test -e " .. quote(path)) == true
end

local function sleep(s) os.execute("sleep " .. s) end

M.sleep, M.read, M.exists, M.quote, M.sh = sleep, read, exists, quote, sh

function M.binary()
  return os.getenv("SESH_POOL_BIN") or ((os.getenv("SESH_BUILD") or "build") .. "/bin/sesh-pool")
end

function M.tmpdir()
  local base = os.getenv("SESH_TEST_TMP") or os.getenv("TMPDIR") or "/tmp"
  return (sh("mktemp -d " .. quote(base .. "/pool.XXXXXX")):gsub("%s+$", ""))
end

-- Runs sesh-pool in the background; returns pid, and the files it writes to.
-- prefix: words run before it (setpriv ...), or nil.
function M.spawn(args, dir, prefix)
  local out, err = dir .. "/stdout", dir .. "/stderr"
  local list = {}
  for _, w in ipairs(prefix or {}) do list[#list + 1] = quote(w) end   -- it execs the pool: same pid
  list[#list + 1] = quote(M.binary())
  for _, a in ipairs(args) do list[#list + 1] = quote(a) end
  local cmd = ("%s >%s 2>%s </dev/null & echo $!"):format(table.concat(list, " "), quote(out), quote(err))
  local pid = tonumber((sh(cmd):match("%d+")))
  return pid, out, err
end

function M.alive(pid)
  -- a zombie (exited, not yet reaped by the shell) counts as gone
  local stat = read("/proc/" .. pid .. "/stat")
  return stat ~= nil and not stat:match("^%d+ %b() Z")
end

-- Waits for the startup line; returns it or nil, stderr.
function M.wait_line(pid, out, err, seconds)
  for _ = 1, (seconds or 20) * 20 do
    local s = read(out) or ""
    local line = s:match("^(sesh%-pool: listening on [^\n]*)\n")
    if line then return line end
    if not M.alive(pid) then break end
    sleep(0.05)
  end
  return nil, read(err)
end

function M.start(opts)
  opts = opts or {}
  local dir = opts.dir or M.tmpdir()    -- opts.dir: restart a pool in the same place
  local self = setmetatable({ dir = dir, token_file = dir .. "/token", state_dir = dir .. "/state" }, Pool)
  local args = { "--token-file", self.token_file, "--state-dir", self.state_dir }
  if opts.socket then
    self.socket = dir .. "/pool.sock"
    args[#args + 1] = "--socket"; args[#args + 1] = self.socket
  end
  if not opts.keep_ready then
    -- ready sandboxes cost a start each: specs that want them say so
    local wants = false
    for _, a in ipairs(opts.args or {}) do if a == "--ready-sessions" then wants = true end end
    if not wants then args[#args + 1] = "--ready-sessions"; args[#args + 1] = "0" end
  end
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
  for a in (os.getenv("SESH_POOL_ARGS") or ""):gmatch("%S+") do args[#args + 1] = a end
  self.args = args
  local prefix = opts.prefix
  local user = opts.user or tonumber(os.getenv("SESH_POOL_USER") or "")
  if user then         -- a pool that is not root: its directory is that user's
    os.execute(("chown %d:%d %s"):format(user, user, quote(dir)))
    prefix = { "setpriv", "--reuid=" .. user, "--regid=" .. user, "--clear-groups", "--" }
  end
  local pid, out, err = M.spawn(args, dir, prefix)
  self.pid, self.stdout, self.stderr = pid, out, err
  local line, why = M.wait_line(pid, out, err)
  if not line then
    error("sesh-pool did not start: " .. tostring(why), 2)
  end
  started[self] = true
  self.line = line
  self.endpoint = line:match("listening on (https?://[^ ]+)")
  self.token = (read(self.token_file) or ""):gsub("%s+$", "")
  self.ca_file = opts.ca_file
  self.client = http.client{ timeout = opts.timeout or 120, unix_socket = self.socket, ca_file = self.ca_file }
  if self.socket then self.endpoint = "http://localhost" end
  return self
end

function Pool:session(o)
  local sessions = require "sessions"
  o = o or {}
  o.endpoint = o.endpoint or self.endpoint
  o.token = o.token or self.token
  if self.socket then o.unix_socket = self.socket end
  o.ca_file = o.ca_file or self.ca_file
  return sessions.new(o)
end

local function encode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end
M.encode = encode

-- Builds the URL of an operation. query: a list of {k, v} pairs (order kept)
-- or nil for identifier + api-version.
function Pool:url(path, o)
  o = o or {}
  local q = {}
  if o.query then
    for _, kv in ipairs(o.query) do
      q[#q + 1] = kv[1] .. (kv[2] ~= nil and ("=" .. (o.plain and kv[2] or encode(kv[2]))) or "")
    end
  else
    if o.identifier ~= false then q[#q + 1] = "identifier=" .. encode(o.identifier or "spec-session") end
    if o.api_version ~= false then q[#q + 1] = "api-version=" .. (o.api_version or "2024-02-02-preview") end
  end
  local base = self.endpoint .. (o.prefix or "")
  return base .. (path:sub(1, 1) == "/" and "" or "/") .. path .. (#q > 0 and ("?" .. table.concat(q, "&")) or "")
end

function Pool:request(o)
  local headers = o.headers or {}
  if o.auth ~= false and not headers.Authorization then headers.Authorization = "Bearer " .. self.token end
  local body = o.body
  if o.json ~= nil then
    body = cjson.encode(o.json)
    headers["Content-Type"] = headers["Content-Type"] or "application/json"
  end
  local res = (o.client or self.client):request{
    method = o.method or "GET",
    url = o.url or self:url(o.path, o),
    headers = headers, body = body, multipart = o.multipart,
    output_file = o.output_file, timeout = o.timeout,
  }
  if res.body and (res.headers["content-type"] or ""):match("json") then
    local ok, v = pcall(cjson.decode, res.body)
    if ok then res.json = v end
  end
  return res
end

-- First-generation execute; returns the response and its properties.
function Pool:execute(code, o)
  o = o or {}
  o.method = "POST"; o.path = o.path or "code/execute"
  o.json = { properties = { codeInputType = "inline", executionType = "synchronous", code = code,
                            timeoutInSeconds = o.timeout_s } }
  local res = self:request(o)
  return res, res.json and res.json.properties
end

function Pool:log() return read(self.stderr) or "" end
function Pool:alive() return M.alive(self.pid) end

function Pool:stop(signal)
  if self.client then self.client:close(); self.client = nil end
  if not M.alive(self.pid) then return true end
  os.execute("kill -" .. (signal or "TERM") .. " " .. self.pid .. " 2>/dev/null")
  for _ = 1, 300 do
    if not M.alive(self.pid) then return true end
    sleep(0.05)
  end
  os.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
  return false
end

-- Removes the spec's directory (after stop).
function Pool:cleanup()
  os.execute("rm -rf " .. quote(self.dir))
end

return M
