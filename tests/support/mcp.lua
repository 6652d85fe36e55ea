-- support/mcp.lua — what the MCP specs share: the SDK installed (once), Node
-- scripts run and their JSON read back, sesh-pool's MCP over stdio and HTTP,
-- and the SDK test server started.
--
--   local mcpt = require "support.mcp"
--   mcpt.node("tests/mcp/sdk_client.cjs", "flow", { MCP_TRANSPORT = "stdio", ... })
--      -> the decoded JSON the script printed, and its stderr
--   mcpt.stdio_args(dir) -> { "--mcp-stdio", "--state-dir", dir, ... }
--   local pool = mcpt.http_pool()   -- support.pool with --mcp-key-file; pool.mcp_url,
--                                   -- pool.mcp_key
--   mcpt.post(pool, body, headers)  -- a raw POST to /mcp with the key (headers override)
--   local srv = mcpt.sdk_server("http" | "http-json")   -- srv.url, srv:stop()
local cjson = require "cjson"
local poolmod = require "support.pool"
local util = require "support.util"

local M = {}
local quote, read = util.quote, util.read

M.BUILD = os.getenv("SESH_BUILD") or "build"
M.NPM = M.BUILD .. "/npm"

local installed
-- The SDK in build/npm (tests/support/npm.sh installs it the first time).
function M.npm()
  if not installed then
    local ok = os.execute("sh tests/support/npm.sh")
    if not ok then error("tests/support/npm.sh could not install @modelcontextprotocol/sdk (see above)", 2) end
    installed = true
  end
  return M.NPM
end

local function env_words(env)
  local words = {}
  for k, v in pairs(env or {}) do words[#words + 1] = k .. "=" .. quote(v) end
  table.sort(words)
  return table.concat(words, " ")
end

-- Runs `node script args...` and decodes the one JSON line it prints.
function M.node(script, args, env)
  M.npm()
  env = env or {}
  env.SESH_NPM = env.SESH_NPM or M.NPM
  local errfile = poolmod.tmpdir() .. "/node.stderr"
  local words = {}
  for _, a in ipairs(type(args) == "table" and args or { args }) do words[#words + 1] = quote(a) end
  local cmd = ("env %s node %s %s 2>%s"):format(env_words(env), quote(script), table.concat(words, " "),
                                              quote(errfile))
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  local stderr = read(errfile) or ""
  local ok, v = pcall(cjson.decode, (out:match("[^\n]*\n?$") or ""))
  if not ok or type(v) ~= "table" then
    error(("%s %s printed no JSON:\n%s\nstderr:\n%s"):format(script, tostring(args), out, stderr), 2)
  end
  if v.crash then error(("%s %s broke: %s\nstderr:\n%s"):format(script, tostring(args), v.crash, stderr), 2) end
  return v, stderr
end

-- Waits for fn() to return something true (checked every 50 ms, at most
-- `seconds`, default 20); returns it, or nil.
function M.wait_for(fn, seconds)
  for _ = 1, (seconds or 20) * 20 do
    local v = fn()
    if v then return v end
    poolmod.sleep(0.05)
  end
  return nil
end

-- The pids of processes whose command line holds text (the sandboxes of a
-- pool name its state directory).
function M.processes_naming(text)
  local found = {}
  for pid in poolmod.sh("ls /proc"):gmatch("%d+") do
    local cmdline = read("/proc/" .. pid .. "/cmdline")
    if cmdline and cmdline:find(text, 1, true) then found[#found + 1] = tonumber(pid) end
  end
  return found
end

-- sesh-pool's arguments for a stdio MCP server with its state in dir.
function M.stdio_args(dir, extra)
  local args = { "--mcp-stdio", "--state-dir", dir, "--ready-sessions", "0" }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  return args
end

function M.post(pool, body, headers)
  local h = { ["x-ms-apikey"] = pool.mcp_key, ["Content-Type"] = "application/json",
              Accept = "application/json, text/event-stream" }
  for k, v in pairs(headers or {}) do h[k] = v ~= false and v or nil end
  return pool:request{ method = "POST", url = pool.mcp_url, auth = false, headers = h,
                       body = type(body) == "table" and cjson.encode(body) or body }
end

-- A pool serving MCP over HTTP too (/mcp on its endpoint).
function M.http_pool(opts)
  opts = opts or {}
  local dir = poolmod.tmpdir()
  local args = { "--mcp-key-file", dir .. "/mcp-key" }
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
  local pool = poolmod.start{ dir = dir, args = args, socket = opts.socket }
  pool.mcp_key = (read(dir .. "/mcp-key") or ""):gsub("%s+$", "")
  pool.mcp_url = pool.endpoint .. "/mcp"
  return pool
end

-- The SDK test server (tests/mcp/sdk_server.cjs) over HTTP; waits for its line.
function M.sdk_server(mode)
  M.npm()
  local dir = poolmod.tmpdir()
  local args = mode == "http-json" and "http --json" or "http"
  local pid = tonumber(poolmod.sh(("env SESH_NPM=%s node tests/mcp/sdk_server.cjs %s >%s 2>%s </dev/null & echo $!")
    :format(quote(M.NPM), args, quote(dir .. "/out"), quote(dir .. "/err"))):match("%d+"))
  local url
  for _ = 1, 400 do
    url = (read(dir .. "/out") or ""):match("listening on (http://%S+)")
    if url or not poolmod.alive(pid) then break end
    poolmod.sleep(0.05)
  end
  if not url then error("the SDK test server did not start: " .. (read(dir .. "/err") or ""), 2) end
  return { url = url, pid = pid, dir = dir,
           stop = function(self)
             os.execute("kill " .. self.pid .. " 2>/dev/null")
             os.execute("rm -rf " .. quote(self.dir))
           end }
end

return M
