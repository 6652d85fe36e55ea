-- mcp.lua — a small Model Context Protocol client (protocol versions
-- 2025-06-18 and 2025-03-26) on the host's transports: streamable HTTP
-- through sessions.http (answers as JSON or as an SSE stream), and stdio
-- through sessions.proc (a server launched as a command).
--
--   local mcp = require "mcp"
--   local c <close> = mcp.connect{ url = "http://127.0.0.1:8000/mcp",
--                                  headers = { ["x-ms-apikey"] = key } }
--   local c <close> = mcp.spawn{ command = "sesh-pool", args = { "--mcp-stdio" } }
--   for _, t in ipairs(c:tools()) do print(t.name, t.description) end
--   local r = c:call("launchShell", {})
--   print(r.structuredContent.environmentId, r.text, r.isError)
--   c:close()
--
-- Both connect and spawn initialize the session before they return.
-- c:call returns the tool's result ({ content, structuredContent, isError },
-- plus `text`: its text blocks joined); a tool that failed is a result with
-- isError = true, not an error. Errors are sessions.errors values: kind "mcp"
-- (the server answered a JSON-RPC error; code is its code), "http" (a status
-- that is not 2xx), "protocol" (an answer that breaks the protocol),
-- "transport" (no answer: connection, process gone), "timeout", "usage".
-- A request waits at most `timeout` seconds (default 240; per call:
-- c:call(name, args, { timeout = s })); over stdio a notifications/cancelled
-- then goes to the server and a "timeout" error is raised (over HTTP the
-- transport's timeout error, and the server sees the connection close).

local json = require "sessions.json"
local errors = require "sessions.errors"

local M = {}

M.PROTOCOL_VERSION = "2025-06-18"
M.SUPPORTED = { ["2025-06-18"] = true, ["2025-03-26"] = true }
M.DEFAULT_TIMEOUT = 240
M.CLOSE_WAIT = 2            -- seconds a stdio server gets to exit after its stdin closes, then after SIGTERM

local Client = { __name = "mcp.client" }
Client.__index = Client

local function raise(fields)
  fields.op = fields.op and ("mcp " .. fields.op) or "mcp"
  errors.raise(fields)
end

local function host_version()
  local ok, host = pcall(require, "sessions.host")
  return ok and type(host) == "table" and host.version or "0"
end

-- The text blocks of a result, joined.
local function text_of(result)
  local parts = {}
  for _, block in ipairs(type(result.content) == "table" and result.content or {}) do
    if block.type == "text" and type(block.text) == "string" then parts[#parts + 1] = block.text end
  end
  return table.concat(parts, "\n")
end
M.text_of = text_of

---------------------------------------------------------------------------
-- Messages.

local function decode(text, op)
  local ok, v = pcall(json.decode, text)
  if not ok then raise{ kind = "protocol", op = op, message = "the server sent invalid JSON: " .. tostring(v) } end
  return v
end

-- A server's request to us: ping is answered, anything else refused (we
-- declare no client capabilities).
local function answer_server_request(msg)
  if msg.method == "ping" then return { jsonrpc = "2.0", id = msg.id, result = setmetatable({}, {}) } end
  return { jsonrpc = "2.0", id = msg.id,
           error = { code = -32601, message = "Method not found: this client offers no " .. tostring(msg.method) } }
end

-- Whether msg is the answer to request id.
local function answers(msg, id)
  return type(msg) == "table" and msg.id == id and msg.method == nil and (msg.result ~= nil or msg.error ~= nil)
end

local function result_of(msg, op)
  if msg.error ~= nil then
    local e = type(msg.error) == "table" and msg.error or {}
    raise{ kind = "mcp", op = op, code = math.tointeger(e.code) or e.code,
           message = type(e.message) == "string" and e.message or "the server answered an error",
           data = e.data }
  end
  if type(msg.result) ~= "table" then
    raise{ kind = "protocol", op = op, message = "the answer has no result object" }
  end
  return msg.result
end

---------------------------------------------------------------------------
-- Streamable HTTP.

local Http = {}
Http.__index = Http

-- The messages of an SSE body: each event's data lines, joined.
local function sse_messages(body, op)
  local list = {}
  body = body:gsub("\r\n", "\n"):gsub("\r", "\n")
  for event in (body .. "\n\n"):gmatch("(.-)\n\n") do
    local data = {}
    for line in (event .. "\n"):gmatch("(.-)\n") do
      local value = line:match("^data: ?(.*)$")
      if value then data[#data + 1] = value end
    end
    if #data > 0 then list[#list + 1] = decode(table.concat(data, "\n"), op) end
  end
  return list
end

function Http:headers()
  local h = { ["Content-Type"] = "application/json", Accept = "application/json, text/event-stream" }
  for k, v in pairs(self.extra_headers) do h[k] = v end
  if self.session_id then h["Mcp-Session-Id"] = self.session_id end
  if self.protocol_version then h["MCP-Protocol-Version"] = self.protocol_version end
  return h
end

function Http:post(msg, op, timeout)
  return self.http:request{ method = "POST", url = self.url, headers = self:headers(),
                            body = json.encode(msg), timeout = timeout }
end

-- The error a refusal carries: the JSON-RPC error in its body, else the body.
local function http_error(res, op)
  local message = res.body and res.body:sub(1, 300) or ""
  local ok, body = pcall(json.decode, res.body or "")
  local code
  if ok and type(body) == "table" and type(body.error) == "table" then
    message = tostring(body.error.message or message)
    code = math.tointeger(body.error.code)
  end
  raise{ kind = "http", op = op, status = res.status, code = code,
         message = message ~= "" and message or ("HTTP " .. res.status) }
end

-- Sends a message; for a request (id), returns the answer.
function Http:send(msg, id, op, timeout)
  local res = self:post(msg, op, timeout)
  if res.status == 404 and self.session_id and id and not self.reinitializing then
    -- The server ended our session: the protocol says to start a new one.
    self.session_id = nil
    self.reinitializing = true
    local ok, err = pcall(self.client.initialize, self.client)
    self.reinitializing = false
    if not ok then error(err, 0) end
    res = self:post(msg, op, timeout)
  end
  if res.status < 200 or res.status >= 300 then http_error(res, op) end
  if res.headers["mcp-session-id"] and msg.method == "initialize" then
    self.session_id = res.headers["mcp-session-id"]
  end
  if not id then return nil end
  if res.status == 202 then
    raise{ kind = "protocol", op = op, status = 202, message = "the server accepted a request without answering it" }
  end
  local ctype = (res.headers["content-type"] or ""):lower()
  local messages
  if ctype:find("text/event-stream", 1, true) then
    messages = sse_messages(res.body or "", op)
  else
    local v = decode(res.body or "", op)
    messages = (type(v) == "table" and v[1] ~= nil) and v or { v }
  end
  local found
  for _, m in ipairs(messages) do
    if answers(m, id) then
      found = m
    elseif type(m) == "table" and m.method and m.id ~= nil then
      self:post(answer_server_request(m), op)
    end
  end
  if not found then raise{ kind = "protocol", op = op, message = "the server's answer holds no response to the request" } end
  return found
end

function Http:close()
  if self.session_id then
    pcall(self.http.request, self.http, { method = "DELETE", url = self.url, headers = self:headers(), timeout = 10 })
    self.session_id = nil
  end
  self.http:close()
end

---------------------------------------------------------------------------
-- stdio.

local Stdio = {}
Stdio.__index = Stdio

function Stdio:write(msg, op)
  local ok, err, name = self.proc:write(json.encode(msg) .. "\n")
  if not ok then
    raise{ kind = "transport", op = op, code = name, message = "cannot write to the MCP server: " .. tostring(err) }
  end
end

function Stdio:send(msg, id, op, timeout)
  timeout = timeout or self.timeout
  self:write(msg, op)
  if not id then return nil end
  local deadline = os.time() + timeout + 1        -- whole seconds: the first wait is exact
  local wait = timeout
  while true do
    local line, err, name = self.proc:read_line(wait)
    wait = math.max(0, deadline - os.time())
    if not line then
      if name == "timeout" then
        pcall(self.write, self, { jsonrpc = "2.0", method = "notifications/cancelled",
                                  params = { requestId = id, reason = "timed out" } }, op)
        raise{ kind = "timeout", op = op, message = ("no answer within %g s"):format(timeout) }
      elseif name == "interrupted" then
        pcall(self.write, self, { jsonrpc = "2.0", method = "notifications/cancelled",
                                  params = { requestId = id, reason = "interrupted" } }, op)
        raise{ kind = "interrupted", op = op, message = "interrupted by Ctrl-C" }
      end
      local how, code = self.proc:wait(0.5)
      raise{ kind = "transport", op = op, code = name,
             message = ("the MCP server %s before answering (%s)"):format(
               how and ("exited (" .. how .. " " .. tostring(code) .. ")") or "closed its output", tostring(err)) }
    end
    if line:match("^%s*[%[{]") then
      local m = decode(line, op)
      for _, one in ipairs((type(m) == "table" and m[1] ~= nil) and m or { m }) do
        if answers(one, id) then return one end
        if type(one) == "table" and one.method and one.id ~= nil then
          self:write(answer_server_request(one), op)
        end
      end
    end                                   -- anything else on stdout is not ours to read
  end
end

function Stdio:close()
  local p = self.proc
  p:close_stdin()
  if not p:wait(M.CLOSE_WAIT) then
    p:kill("TERM")
    if not p:wait(M.CLOSE_WAIT) then
      p:kill("KILL")
      p:wait(M.CLOSE_WAIT)
    end
  end
  self.exit_how, self.exit_code = p:wait(0)
  p:close()
end

---------------------------------------------------------------------------
-- The client.

--- Sends a request; returns its result. opts.timeout: seconds for this one.
function Client:request(method, params, opts)
  if self.closed then raise{ kind = "usage", op = method, message = "the client is closed" } end
  self.next_id = self.next_id + 1
  local id = self.next_id
  local msg = { jsonrpc = "2.0", id = id, method = method, params = params }
  return result_of(self.transport:send(msg, id, method, opts and opts.timeout), method)
end

function Client:notify(method, params)
  if self.closed then raise{ kind = "usage", op = method, message = "the client is closed" } end
  self.transport:send({ jsonrpc = "2.0", method = method, params = params }, nil, method)
end

function Client:initialize()
  local r = self:request("initialize", {
    protocolVersion = self.want_version,
    capabilities = setmetatable({}, {}),
    clientInfo = self.client_info,
  })
  if not M.SUPPORTED[r.protocolVersion] then
    raise{ kind = "protocol", op = "initialize",
           message = ("the server speaks MCP %s, which this client does not"):format(tostring(r.protocolVersion)) }
  end
  self.protocol_version = r.protocolVersion
  self.transport.protocol_version = r.protocolVersion
  self.server_info = r.serverInfo
  self.capabilities = r.capabilities
  self.instructions = r.instructions
  self.session_id = self.transport.session_id
  self:notify("notifications/initialized")
  return r
end

--- Every tool of the server (all pages of tools/list).
function Client:tools()
  local list, cursor = {}, nil
  for _ = 1, 1000 do
    local r = self:request("tools/list", cursor and { cursor = cursor } or nil)
    for _, t in ipairs(type(r.tools) == "table" and r.tools or {}) do list[#list + 1] = t end
    cursor = r.nextCursor
    if type(cursor) ~= "string" or cursor == "" then break end
  end
  return list
end

--- Calls a tool; returns its result with `text` (the text blocks joined).
-- opts.timeout: seconds for this call.
function Client:call(name, args, opts)
  if type(name) ~= "string" then errors.usage("mcp call", "the tool name must be a string") end
  if args ~= nil and type(args) ~= "table" then errors.usage("mcp call", "arguments must be a table") end
  local r = self:request("tools/call", { name = name, arguments = args or setmetatable({}, {}) }, opts)
  r.isError = r.isError == true
  r.text = text_of(r)
  return r
end

--- Ends the session (HTTP: DELETE; stdio: closes its input, waits, then
-- TERM and KILL). Safe to call twice.
function Client:close()
  if self.closed then return end
  self.closed = true
  self.transport:close()
end
Client.__close = Client.close

function Client:__gc()
  if self.closed then return end
  self.closed = true
  local t = self.transport
  if t.proc then t.proc:close() elseif t.http then t.http:close() end   -- no waiting in a collector
end

function Client:__tostring()
  local who = self.server_info and self.server_info.name or "?"
  return ("mcp.client (%s, %s, protocol %s)"):format(who, self.where, tostring(self.protocol_version))
end

local function new_client(transport, opts, where)
  local c = setmetatable({
    transport = transport, next_id = 0, where = where,
    want_version = opts.protocol_version or M.PROTOCOL_VERSION,
    client_info = opts.client_info or { name = "sesh", version = host_version() },
  }, Client)
  transport.client = c
  local ok, err = pcall(c.initialize, c)
  if not ok then
    pcall(c.close, c)
    error(err, 0)
  end
  return c
end

--- A client of a streamable HTTP server. opts: url, headers, timeout (240),
-- connect_timeout (10), unix_socket, ca_file, protocol_version, client_info.
function M.connect(opts)
  if type(opts) ~= "table" or type(opts.url) ~= "string" then
    errors.usage("mcp connect", "mcp.connect{ url = \"http://host/mcp\", headers = {...} }")
  end
  local http = require "sessions.http"
  local t = setmetatable({
    url = opts.url, extra_headers = opts.headers or {},
    http = http.client{ timeout = opts.timeout or M.DEFAULT_TIMEOUT, connect_timeout = opts.connect_timeout or 10,
                        unix_socket = opts.unix_socket, ca_file = opts.ca_file },
  }, Http)
  return new_client(t, opts, opts.url:gsub("%?.*$", ""))
end

--- A client of a server launched as a command (stdio). opts: command, args,
-- env (added to the inherited environment), cwd, stderr ("inherit", false,
-- or a file path), timeout (240), protocol_version, client_info.
function M.spawn(opts)
  if type(opts) ~= "table" or type(opts.command) ~= "string" then
    errors.usage("mcp spawn", "mcp.spawn{ command = \"server\", args = {...}, env = {...} }")
  end
  local proc = require "sessions.proc"
  local p, err, name = proc.spawn{ command = opts.command, args = opts.args, env = opts.env,
                                   cwd = opts.cwd, stderr = opts.stderr }
  if not p then raise{ kind = "transport", op = "spawn", code = name, message = err } end
  local t = setmetatable({ proc = p, timeout = opts.timeout or M.DEFAULT_TIMEOUT }, Stdio)
  return new_client(t, opts, opts.command)
end

return M
