-- sessions — run Python and shell commands in sandboxed sessions of a pool
-- (Azure Container Apps dynamic sessions, or the local sesh-pool), from Lua.
--
--   local sessions = require "sessions"
--   local s <close> = sessions.new{}            -- the local pool, started on demand
--   print(s:execute("6 * 7").result)            --> 42
--   print(s:shell("echo hi").stdout)            --> hi
--
-- This file is the module's face: options, defaults, the session object and
-- its operations, normalized results.  The wire format of both API
-- generations lives in sessions/protocol.lua, sign-in in sessions/auth.lua,
-- the local pool in sessions/localpool.lua, and HTTP in the C transport
-- (sessions.http).  See README.md for the reference.

local http = require "sessions.http"
local core = require "sessions.core"
local json = require "sessions.json"
local errors = require "sessions.errors"
local protocol = require "sessions.protocol"
local auth = require "sessions.auth"
local image = require "sessions.image"
local localpool = require "sessions.localpool"
local log = require "sessions.log"

local sessions = {
  _VERSION = "sessions " .. (http.version or "0"),
  DEFAULT_API_VERSION = protocol.DEFAULT_VERSION,
  LATEST_API_VERSION = protocol.LATEST_VERSION,
  json = json,
  errors = errors,
  protocol = protocol,
}

-- Defaults -------------------------------------------------------------------

local DEFAULTS = {
  timeout = 240,            -- seconds for one request: the service's 220 s plus margin
  connect_timeout = 10,
  retries = 4,              -- attempts in all for a retryable request
  retry_time = 60,          -- seconds, from the first attempt
}
sessions.defaults = DEFAULTS

-- Which answers are worth another attempt.  An execute is retried only when
-- the server says it did not run it (429 Too Many Requests, 503 Service
-- Unavailable) or the connection never opened; 502/504 come from a gateway
-- that may have passed it on, and a reset may come after the code ran.
local RETRY_SAFE = { 429, 502, 503, 504 }
-- A transfer of a file has no time limit (a gigabyte takes what it takes)
-- but is abandoned when nothing moves for this long (or `timeout`, if shorter).
local STALL_SECONDS = 60
local RETRY_EXECUTE = { 429, 503 }

local uuid4 = core.uuid4

-- Helpers ----------------------------------------------------------------------

local function usage(op, fmt, ...) errors.usage(op, fmt:format(...)) end

local function check_opts(op, opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= "table" then usage(op, "options must be a table, got %s", type(opts)) end
  for k in pairs(opts) do
    if not allowed[k] then
      local names = {}
      for n in pairs(allowed) do names[#names + 1] = n end
      table.sort(names)
      usage(op, "unknown option '%s' (known: %s)", tostring(k), table.concat(names, ", "))
    end
  end
  return opts
end

local function set(list)
  local t = {}
  for _, v in ipairs(list) do t[v] = true end
  return t
end

local function is_loopback(url)
  local hostpart = url:match("^%a[%w+.-]*://([^/?#]*)") or ""
  hostpart = hostpart:gsub("^.*@", ""):gsub(":%d+$", "")
  return hostpart == "localhost" or hostpart:match("^127%.") or hostpart == "[::1]"
end

local reasons = {
  [400] = "the request was refused as malformed",
  [401] = "the token was refused (missing, wrong or expired)",
  [403] = "the identity lacks the Azure ContainerApps Session Executor role on this pool",
  [404] = "not found",
  [409] = "conflict",
  [413] = "the request is larger than the pool accepts (128 MB on Azure)",
  [429] = "too many requests: the pool is throttling",
  [500] = "the pool had an internal error",
  [502] = "bad gateway",
  [503] = "the pool is unavailable",
  [504] = "the gateway timed out",
}

-- Python's traceback, reduced to its last line: "ZeroDivisionError: division by zero".
local function python_error(stderr)
  local clean = (stderr or ""):gsub("\27%[[%d;]*[A-Za-z]", "")
  local last
  for line in clean:gmatch("[^\n]+") do
    if line:match("%S") then last = line end
  end
  last = last and last:gsub("^%s+", "") or "the code failed"
  local name = last:match("^([%a_][%w_%.]*):") or last:match("^([%a_][%w_%.]*Error)$")
      or last:match("^([%a_][%w_%.]*Exception)$")
  return name, last
end

-- Results ----------------------------------------------------------------------

local Result = { __name = "sessions.result" }
Result.__index = Result

-- Raise the execution's Python failure as an error value, else return the result.
function Result:check()
  if self.status == "Success" then return self end
  local code, line = python_error(self.stderr)
  if self.status ~= "Failure" then code, line = self.status, "the execution ended " .. self.status end
  if self.error and self.error.code then code = self.error.code end
  errors.raise{ kind = "python", op = "execute", code = code, message = line,
                stderr = self.stderr, result = self }
end

function Result:__tostring()
  local r = self.result
  if image.is_image(r) then r = "<" .. tostring(r.format) .. " image>" end
  if type(r) == "string" and #r > 80 then r = r:sub(1, 77) .. "..." end
  return ("sessions.result (%s, %s ms): %s"):format(self.status, tostring(self.ms),
    r == nil and "nil" or tostring(r))
end

local function normalize_result(r)
  r.ok = r.status == "Success"
  return setmetatable(r, Result)
end

-- Sessions ----------------------------------------------------------------------

-- The id is a secret (whoever knows it can use the session): texts show
-- only its start, as the pool's log does.
local function short_id(id) return #id > 8 and (id:sub(1, 8) .. "…") or id end

local Session = { __name = "sessions.session" }
Session.__index = Session

local NEW_OPTS = set{ "endpoint", "id", "token", "token_file", "api_version", "timeout",
  "connect_timeout", "retries", "retry_time", "progress", "sanitize", "user_agent",
  "unix_socket", "azure", "execution_timeout", "max_output", "ca_file" }

-- The token for an endpoint: the options, then SESH_TOKEN, then the file named
-- by SESH_TOKEN_FILE (a pool started by hand), then Azure sign-in.
local function read_token_file(path, what)
  local f, err = io.open(path, "rb")
  if not f then usage("sessions.new", "cannot read the token file (%s): %s", what, tostring(err)) end
  local token = f:read("a"):gsub("^%s+", ""):gsub("%s+$", "")
  f:close()
  if token == "" then usage("sessions.new", "the token file %s (%s) is empty", path, what) end
  return token
end

local function token_option(o)
  if o.token ~= nil then return o.token end
  if o.token_file then return read_token_file(o.token_file, "token_file") end
  local env = os.getenv("SESH_TOKEN")
  if env and env ~= "" then return env end
  env = os.getenv("SESH_TOKEN_FILE")
  if env and env ~= "" then return read_token_file(env, "SESH_TOKEN_FILE") end
  return nil
end

-- The connection: endpoint, socket and credential, from the options, then
-- POOL_MANAGEMENT_ENDPOINT, then the local pool.
local function resolve_connection(o)
  local endpoint = o.endpoint
  if endpoint == nil then
    local env = os.getenv("POOL_MANAGEMENT_ENDPOINT")
    if env and env ~= "" then endpoint = env end
  end
  if endpoint == nil then
    if o.unix_socket then usage("sessions.new", "the unix_socket option needs an endpoint too") end
    if o.token ~= nil and type(o.token) ~= "string" then
      usage("sessions.new", "a token %s needs an endpoint (endpoint = ... or POOL_MANAGEMENT_ENDPOINT): "
            .. "the local pool takes the token in its own folder", type(o.token) == "function"
            and "function" or "from sessions.credential{}")
    end
    local pool = localpool.connect{}
    return { endpoint = pool.endpoint, unix_socket = pool.socket, local_pool = pool,
             credential = auth.static(o.token or pool.token) }
  end
  if type(endpoint) ~= "string" or not endpoint:find("^https?://[^/]") then
    usage("sessions.new", "endpoint must be an http:// or https:// URL, got %s",
          type(endpoint) == "string" and ("%q"):format(endpoint) or type(endpoint))
  end
  local credential = auth.from_option(token_option(o), o.azure)
  if credential.kind == "azure" and endpoint:find("^http:") and not is_loopback(endpoint) then
    usage("sessions.new", "refusing to send an Azure token over plain http to %s: use https",
          endpoint:match("^http://([^/?#]*)"))
  end
  return { endpoint = endpoint, unix_socket = o.unix_socket, credential = credential }
end

--- sessions.new{...} -> session
function sessions.new(opts)
  local o = check_opts("sessions.new", opts, NEW_OPTS)
  local version = o.api_version or protocol.DEFAULT_VERSION
  local features = protocol.features(version)
  if not features then
    usage("sessions.new", "unknown api_version %q (known: %s)", tostring(version), protocol.known())
  end
  local id = o.id or uuid4()
  if type(id) ~= "string" or #id < 4 or #id > 128 or id:find("[%c%s\128-\255]") then
    usage("sessions.new", "id must be 4 to 128 printable ASCII characters without spaces")
  end
  for _, k in ipairs{ "timeout", "connect_timeout", "retries", "retry_time", "execution_timeout", "max_output" } do
    if o[k] ~= nil and (type(o[k]) ~= "number" or o[k] < 0) then
      usage("sessions.new", "option '%s' must be a non-negative number", k)
    end
  end
  local conn = resolve_connection(o)
  local self = setmetatable({
    id = id,
    endpoint = conn.endpoint,
    api_version = version,
    generation = features.gen,
    features = features,
    local_pool = conn.local_pool and conn.local_pool.dir or nil,
    sanitize = o.sanitize or false,
    progress = o.progress,
    execution_timeout = o.execution_timeout,
    max_output = o.max_output,
    timeout = o.timeout or DEFAULTS.timeout,
    retries = o.retries or DEFAULTS.retries,
    retry_time = o.retry_time or DEFAULTS.retry_time,
    _credential = conn.credential,
    _client_opts = {
      connect_timeout = o.connect_timeout or DEFAULTS.connect_timeout,
      timeout = o.timeout or DEFAULTS.timeout,
      unix_socket = conn.unix_socket,
      user_agent = o.user_agent,
      ca_file = o.ca_file,
    },
  }, Session)
  log("debug", ("sessions: session %s on %s, api-version %s"):format(short_id(id),
      self.local_pool and ("the local pool " .. self.local_pool) or self.endpoint, version))
  return self
end

function Session:__tostring()
  return ("sessions.session %s (%s, %s%s)"):format(short_id(self.id),
    self.local_pool and "local pool" or self.endpoint, self.api_version,
    self.closed and ", closed" or "")
end

function Session:_client()
  if self.closed then
    usage("session", "session %s is closed", short_id(self.id))
  end
  if not self._http then self._http = http.client(self._client_opts) end
  return self._http
end

-- The retry policy for a request description.
function Session:_retry(req)
  if self.retries <= 1 then return nil end
  -- idempotent: nil leaves it to the method (GET, PUT, DELETE yes; POST no), so a
  -- request that does not say is neither retried blindly nor kept from retrying
  return { max = self.retries, total = self.retry_time, base = 0.25, cap = 8,
           statuses = (req.op == "execute" or req.op == "shell") and RETRY_EXECUTE or RETRY_SAFE,
           idempotent = req.idempotent }
end

-- Transport failures that prove the request never reached the server
-- (CURLcodes: protocol, URL, proxy and host names, connect, TLS handshake and
-- trust): a session the pool never saw was not made, and closing it sends nothing.
local NEVER_SENT = set{ 1, 3, 5, 6, 7, 35, 58, 59, 60, 77, 83 }

local function reached(e)
  if e.kind == "usage" or e.kind == "file" then return false end
  return not (e.kind == "transport" and NEVER_SENT[e.code])
end

-- A request as the log names it: method and path, never the query (it holds the id).
local function log_name(req)
  local path = req.path or (req.url or ""):match("^%a[%w+.-]*://[^/?#]*/?([^?#]*)") or "?"
  return (req.method or "GET") .. " " .. path
end

local function tries(n)
  if not n or n <= 1 then return "" end
  return (", %d attempts"):format(n)
end

-- What to say when a pool on this machine refuses us or sign-in fails for it.
local LOCAL_TOKEN_HINT = "a pool on this machine wants the token it was started with: " ..
  "token_file = PATH or token = ... in sessions.new, or SESH_TOKEN_FILE=PATH (or SESH_TOKEN) " ..
  "in the environment; sesh-pool names its token file when it starts"

-- Limits of the local pool are its options, given through SESH_POOL_ARGS.
local POOL_ARGS_HINT = "the local pool takes its options from SESH_POOL_ARGS, " ..
  "e.g. SESH_POOL_ARGS='--max-upload 1073741824 --max-disk 4294967296'; " ..
  "a running pool keeps its own until it exits"

function Session:_hint(status)
  if status == 401 and is_loopback(self.endpoint) then return LOCAL_TOKEN_HINT end
  if (status == 413 or status == 507) and self.local_pool then return POOL_ARGS_HINT end
end

-- Send one request; returns the transport's answer for a 2xx status,
-- raises an error value otherwise.  x: body, multipart, output_file, timeout, accept.
function Session:_send(req, x)
  x = x or {}
  local client = self:_client()
  local url = req.url or protocol.url(self.endpoint, req.path, req.query)
  local function attempt(token)
    local headers = { Authorization = "Bearer " .. token, Accept = x.accept or "application/json" }
    if req.content_type then headers["Content-Type"] = req.content_type end
    for k, v in pairs(req.headers or {}) do headers[k] = v end
    local started = core.monotonic()
    local ok, res = pcall(client.request, client, {
      method = req.method, url = url, headers = headers,
      body = req.body, multipart = x.multipart, output_file = x.output_file,
      timeout = x.timeout, low_speed_limit = x.low_speed_limit, low_speed_time = x.low_speed_time,
      retry = self:_retry(req), progress = self.progress,
    })
    local ms = (core.monotonic() - started) * 1000
    if ok then
      -- an answer: the pool saw the session, unless it refused who asked
      if res.status ~= 401 and res.status ~= 403 then self.used = true end
      log((res.attempts or 1) > 1 and "info" or "debug", ("sessions: %s -> %d in %.1f ms%s"):format(
          log_name(req), res.status, ms, tries(res.attempts)))
      return res
    end
    if errors.is(res) then      -- the transport's error value, now this operation's
      if reached(res) then self.used = true end
      log("debug", ("sessions: %s failed in %.1f ms%s: %s"):format(log_name(req), ms,
          tries(res.attempts), errors.scrub(tostring(res.message), { token })))
      errors.reraise(res, req.op, { retries = (res.attempts or 1) - 1, secrets = { token } })
    end
    error(res, 0)
  end
  local cred = self._credential
  local got, token = pcall(cred.token, cred)
  if not got then
    if errors.is(token, "auth") and is_loopback(self.endpoint) then token.hint = LOCAL_TOKEN_HINT end
    error(token, 0)
  end
  local res = attempt(token)
  if res.status == 401 and cred:refreshable() then
    log("info", "sessions: " .. req.op .. ": 401, signing in again and retrying once")
    cred:invalidate()
    token = cred:token()
    res = attempt(token)
  end
  if res.status >= 200 and res.status < 300 then return res end
  local code, message, request_id = protocol.parse_error(res.headers, res.body)
  errors.raise{ kind = "http", op = req.op, status = res.status, code = code,
                message = message or reasons[res.status] or "unexpected answer",
                request_id = request_id, retries = (res.attempts or 1) - 1,
                retry_after = res.retry_after, secrets = { token },
                hint = self:_hint(res.status) }
end

-- Decode a JSON answer; a bad one is a protocol error that says what arrived.
local function decode(op, res, opts)
  local body = res.body
  if body == nil or body == "" then
    errors.raise{ kind = "protocol", op = op, status = res.status,
                  message = "the server answered HTTP " .. res.status .. " with an empty body where JSON was expected" }
  end
  local ok, doc = pcall(json.decode, body, opts)
  if not ok then
    errors.raise{ kind = "protocol", op = op, status = res.status,
                  message = ("the server answered HTTP %d with %s (%s)"):format(res.status,
                    "invalid JSON", tostring(doc)) }
  end
  return doc
end

-- Run a protocol parser; a shape error is this operation's, on this answer.
local function parse(op, res, f, ...)
  local ok, a, b = pcall(f, ...)
  if ok then return a, b end
  if errors.is(a, "protocol") then a.op, a.status = op, res.status end
  error(a, 0)
end

function Session:_need(op, feature, what)
  if not self.features[feature] then
    usage(op, "%s needs api_version %s or later (this session uses %s)", what,
          protocol.since(feature), self.api_version)
  end
end

-- The api-version for pool-management calls: the session's own when it has
-- them, else the newest (as LangChain does to delete a session).
function Session:_mgmt_version(feature)
  if self.features[feature] then return self.api_version end
  return protocol.LATEST_VERSION
end

-- Execute ---------------------------------------------------------------------------

-- Python's \s in a str pattern: Unicode whitespace (str.isspace), as UTF-8.
local SPACES = { "\194\133", "\194\160", "\225\154\128", "\226\128\168", "\226\128\169",
                 "\226\128\175", "\226\129\159", "\227\128\128" }
for c = 0x2000, 0x200A do SPACES[#SPACES + 1] = utf8.char(c) end

-- The length of the Python whitespace character at i of s, or nil.
local function py_space(s, i)
  local b = s:byte(i)
  if not b then return nil end
  if b == 32 or (b >= 9 and b <= 13) or (b >= 28 and b <= 31) then return 1 end
  if b < 0xC2 then return nil end
  for _, sp in ipairs(SPACES) do
    if s:sub(i, i + #sp - 1) == sp then return #sp end
  end
end

-- Skips Python's (\s|`)* (backticks too) or \s* from i; the next index.
local function skip_spaces(s, i, backticks)
  while true do
    local n = py_space(s, i) or (backticks and s:byte(i) == 96 and 1)
    if not n then return i end
    i = i + n
  end
end

-- Where Python's (\s|`)*$ starts in s.
local function trailing_start(s)
  local i, start = 1, 1
  while i <= #s do
    local n = py_space(s, i) or (s:byte(i) == 96 and 1)
    if n then i = i + n else
      i = i + (s:byte(i) >= 0xC0 and #(s:match("^[\192-\255][\128-\191]*", i)) or 1)
      start = i
    end
  end
  return start
end

-- A case-insensitive word of ASCII letters at i, as Python's (?i:...) sees
-- it: an "s" is also U+017F (long s), which folds to it; the next index.
local function word_at(s, i, word)
  for k = 1, #word do
    local w = word:sub(k, k)
    local c = s:sub(i, i)
    if c:lower() == w then i = i + 1
    elseif w == "s" and s:sub(i, i + 1) == "\197\191" then i = i + 2
    else return nil end
  end
  return i
end

-- LangChain's input sanitizing (_sanitize_input, _sanitize_bash_input):
-- strip leading whitespace, backticks and an optional "python" word (with
-- opts.shell: "bash" or "sh"); trailing whitespace and backticks, with
-- Python's regular expressions' idea of whitespace and of case.  Like
-- LangChain it strips "python" from "python_var = 1" (and "sh" from "shred");
-- opts.whole_word keeps such a name (the agent's tools: models write the
-- word alone on a line).
function sessions.sanitize(code, opts)
  opts = opts or {}
  local i = skip_spaces(code, 1, true)
  local words = opts.shell and { "bash", "sh" } or { "python" }
  for _, w in ipairs(words) do
    local j = word_at(code, i, w)
    if j and not (opts.whole_word and code:byte(j) and not py_space(code, j)) then
      i = j
      break
    end
  end
  local s = code:sub(skip_spaces(code, i, false))
  return s:sub(1, trailing_start(s) - 1)
end

local EXEC_OPTS = set{ "sanitize", "async", "timeout", "poll_interval", "max_output", "jupyter", "operation_id" }

--- s:execute(code [, opts]) -> result
function Session:execute(code, opts)
  local o = check_opts("execute", opts, EXEC_OPTS)
  if type(code) ~= "string" then usage("execute", "code must be a string, got %s", type(code)) end
  local sanitize = o.sanitize
  if sanitize == nil then sanitize = self.sanitize end
  if sanitize then code = sessions.sanitize(code) end
  if o.async and self.generation == 1 then self:_need("execute", "gen2", "asynchronous execution") end
  local exec_timeout = o.timeout or self.execution_timeout
  local req = protocol.execute(self.generation, self.id, self.api_version, code, {
    async = o.async, timeout_s = exec_timeout, max_output = o.max_output or self.max_output,
    jupyter = o.jupyter, operation_id = o.operation_id,
  })
  local http_timeout = exec_timeout and math.max(self.timeout, exec_timeout + 20) or self.timeout
  local res = self:_send(req, { timeout = http_timeout })
  local doc = decode("execute", res, { ordered = true })
  local r = parse("execute", res, protocol.parse_execution, self.generation, doc)
  r.headers = res.headers
  if self.generation == 2 and r.status == "Running" then
    r = self:_poll(r, o, exec_timeout or 220)
  end
  return normalize_result(r)
end

-- Poll an asynchronous execution until it ends (or the execution timeout
-- plus a margin passes).  how: { op, version, parse(doc), running(r) } for
-- executions other than the session's Python (shell commands).
function Session:_poll(r, o, exec_timeout, how)
  how = how or { op = "execute", version = self.api_version,
                 parse = function(doc) return protocol.parse_execution(2, doc) end,
                 running = function(x) return x.status == "Running" end }
  local id = r.id or (r.headers and r.headers["operation-id"])
  if not id then
    errors.raise{ kind = "protocol", op = how.op, message = "an asynchronous execution came back without an id" }
  end
  local interval = o.poll_interval or 0.05
  local started, limit = core.monotonic(), exec_timeout + 30
  while true do
    core.sleep(interval)         -- inside sessions.parallel, other work goes on meanwhile
    local waited = core.monotonic() - started
    interval = math.min(interval * 2, o.poll_interval or 1)
    local res = self:_send(protocol.get_execution(2, self.id, how.version, id))
    local doc = decode("get execution", res, { ordered = true })
    r = parse("get execution", res, how.parse, doc)
    if not how.running(r) then return r end
    if waited > limit then
      errors.raise{ kind = "timeout", op = how.op,
                    message = ("execution %s still running after %d s"):format(id, math.floor(waited)) }
    end
  end
end

--- s:get_execution(id) -> result (second generation)
function Session:get_execution(id)
  self:_need("get execution", "gen2", "get_execution")
  local res = self:_send(protocol.get_execution(self.generation, self.id, self.api_version, id))
  local r = parse("get execution", res, protocol.parse_execution, 2, decode("get execution", res, { ordered = true }))
  return normalize_result(r)
end

--- s:run(code [, opts]) -> value, result: execute, raising on a Python failure.
function Session:run(code, opts)
  local r = self:execute(code, opts):check()
  return r.result, r
end

-- LangChain's tool output, byte for byte, plus "status".
local INVOKE_OPTS = set{ "sanitize", "images", "timeout", "status" }

function Session:invoke(code, opts)
  local o = check_opts("invoke", opts, INVOKE_OPTS)
  local sanitize = o.sanitize
  if sanitize == nil then sanitize = true end
  local r = self:execute(code, { sanitize = sanitize, timeout = o.timeout })
  return sessions.to_langchain(r, o)
end

-- The JSON text of a result as LangChain's SessionsPythonREPLTool returns it.
function sessions.to_langchain(r, o)
  o = o or {}
  local result = r.result
  if type(result) == "table" and result.type == "image" and result.base64_data and not o.images then
    local keys = {}
    for _, k in ipairs(json.keys_of(result) or { "type", "format" }) do
      if k ~= "base64_data" then keys[#keys + 1] = k end
    end
    result = json.object(keys, result)
  end
  local keys = { "result", "stdout", "stderr" }
  if o.status ~= false then keys[4] = "status" end
  return json.dumps(json.object(keys, { result = result, stdout = r.stdout, stderr = r.stderr,
                                        status = r.status }), 2)
end

-- Shell commands --------------------------------------------------------------------

local ShellResult = { __name = "sessions.shell_result" }
ShellResult.__index = ShellResult

-- Raise a command that did not exit 0 as an error value, else return the result.
function ShellResult:check()
  if self.ok then return self end
  local last
  for line in (self.stderr or ""):gmatch("[^\n]+") do
    if line:match("%S") and not line:match("^%[sesh%-pool:") then last = line end
  end
  local code = self.error and self.error.code or self.exit_code
  errors.raise{ kind = "shell", op = "shell", code = code,
                message = ("the command exited with status %d%s"):format(self.exit_code,
                  last and (": " .. last) or ""),
                stderr = self.stderr, result = self }
end

function ShellResult:__tostring()
  local out = self.stdout
  if #out > 80 then out = out:sub(1, 77) .. "..." end
  return ("sessions.shell_result (exit %d, %s ms): %s"):format(self.exit_code, tostring(self.ms),
    (out:gsub("\n", "\\n")))
end

local SHELL_OPTS = set{ "stdin", "args", "timeout", "max_output", "async", "poll_interval",
                        "operation_id", "sanitize" }

-- Shell commands are executions of 2025-02-02-preview and later: an older
-- session's version is passed over for the first that has them.
function Session:_shell_version()
  if self.features.shell then return self.api_version end
  return protocol.since("shell")
end

--- s:shell(command [, opts]) -> { exit_code, ok, stdout, stderr, ms, id, error, raw, headers }
-- opts.args: a list, sent as execCommandAndArgs (a program and its
-- arguments, no shell) instead of a command line (then command is nil).
function Session:shell(command, opts)
  local o = check_opts("shell", opts, SHELL_OPTS)
  if o.args ~= nil then
    if command ~= nil then usage("shell", "give a command line or opts.args, not both") end
    if type(o.args) ~= "table" or #o.args == 0 then usage("shell", "args must be a non-empty list of strings") end
    for i, a in ipairs(o.args) do
      if type(a) ~= "string" then usage("shell", "args[%d] is a %s, not a string", i, type(a)) end
    end
  elseif type(command) ~= "string" then
    usage("shell", "the command must be a string, got %s", type(command))
  end
  if o.stdin ~= nil and type(o.stdin) ~= "string" then usage("shell", "stdin must be a string") end
  if o.sanitize and command then command = sessions.sanitize(command, { shell = true }) end
  local version = self:_shell_version()
  local exec_timeout = o.timeout or self.execution_timeout
  local req = protocol.shell_execute(2, self.id, version, command, {
    args = o.args, stdin = o.stdin, timeout_s = exec_timeout, max_output = o.max_output or self.max_output,
    async = o.async, operation_id = o.operation_id,
  })
  local wait = exec_timeout or 180
  local res = self:_send(req, { timeout = math.max(self.timeout, wait + 20) })
  local r = parse("shell", res, protocol.parse_shell_execution, decode("shell", res, { ordered = true }))
  r.headers = res.headers
  if r.running then
    r = self:_poll(r, o, wait, { op = "shell", version = version, parse = protocol.parse_shell_execution,
                                 running = function(x) return x.running end })
  end
  r.running = nil
  r.ok = r.exit_code == 0
  return setmetatable(r, ShellResult)
end

-- LangChain's SessionsBashTool output, byte for byte.
local SHELL_INVOKE_OPTS = set{ "sanitize", "timeout" }

--- s:shell_invoke(command [, { sanitize = true, timeout }]) -> JSON text
function Session:shell_invoke(command, opts)
  local o = check_opts("shell_invoke", opts, SHELL_INVOKE_OPTS)
  if type(command) ~= "string" then usage("shell_invoke", "the command must be a string, got %s", type(command)) end
  local sanitize = o.sanitize
  if sanitize == nil then sanitize = true end
  local r = self:shell(command, { sanitize = sanitize, timeout = o.timeout })
  return sessions.to_langchain_shell(r)
end

-- The JSON text of a shell result as LangChain's SessionsBashTool returns
-- it: json.dumps({"stdout", "stderr", "exitCode"}, indent=2) of the answer
-- (missing fields are null, as Python's dict.get gives them).
function sessions.to_langchain_shell(r)
  local raw = r.raw or {}
  local result = type(raw.result) == "table" and raw.result or {}
  return json.dumps(json.object({ "stdout", "stderr", "exitCode" },
    { stdout = result.stdout, stderr = result.stderr,
      exitCode = protocol.exit_code(raw.status) or json.null }), 2)
end

-- Files -----------------------------------------------------------------------------

-- Transfer options for a file: no limit on the whole, but abandoned when no
-- byte moves for `timeout` seconds (at most a minute).
function Session:_streaming(x)
  x.timeout = 0
  x.low_speed_limit = 1
  x.low_speed_time = math.ceil(self.timeout > 0 and math.min(self.timeout, STALL_SECONDS) or STALL_SECONDS)
  return x
end

local UPLOAD_OPTS = set{ "name", "data", "file", "content_type" }

--- s:upload{ name =, data = | file = } -> file entry
function Session:upload(opts)
  if type(opts) == "string" then opts = { file = opts } end
  local o = check_opts("upload", opts, UPLOAD_OPTS)
  if (o.data == nil) == (o.file == nil) then usage("upload", "give exactly one of 'data' (a string) or 'file' (a local path)") end
  if o.data ~= nil and type(o.data) ~= "string" then usage("upload", "'data' must be a string, got %s", type(o.data)) end
  local name = o.name
  if name == nil and o.file then name = o.file:match("([^/]+)$") end
  local ok, why = protocol.check_name("upload", name)
  if not ok then usage("upload", "%s", why) end
  if o.file then
    local f, err = io.open(o.file, "rb")
    if not f then errors.raise{ kind = "file", op = "upload", message = "cannot read " .. tostring(err) } end
    f:close()
  end
  local req = protocol.upload(self.generation, self.id, self.api_version, name)
  local part = { name = "file", filename = req.filename, data = o.data, file = o.file,
                 content_type = o.content_type or "application/octet-stream" }
  local res = self:_send(req, self:_streaming{ multipart = { part } })
  if res.body == nil or res.body == "" then return { name = (name:gsub("^/mnt/data/", "")) } end
  local doc = decode("upload", res)
  if self.generation == 1 or type(doc.value) == "table" then
    local list = parse("upload", res, protocol.parse_files, self.generation, doc)
    return list[1] or { name = (name:gsub("^/mnt/data/", "")) }
  end
  local f = parse("upload", res, protocol.parse_file, 2, doc)
  if f.directory == nil then f.path = (name:gsub("^/mnt/data/", ""):gsub("^/+", "")) end
  return f
end

--- s:download(name [, local_path]) -> string, or local_path
function Session:download(name, path)
  local ok, why = protocol.check_name("download", name)
  if not ok then usage("download", "%s", why) end
  if path ~= nil and type(path) ~= "string" then usage("download", "the local path must be a string") end
  local req = protocol.download(self.generation, self.id, self.api_version, name)
  local res = self:_send(req, self:_streaming{ output_file = path, accept = "*/*" })
  if path then return path end
  return res.body or ""
end

local FILES_OPTS = set{ "path", "recursive" }

-- An entry listed under `path`: its path from /mnt/data. The pool says its
-- directory relative to the folder listed ("" for the folder itself); an
-- absolute one, or one that already names that folder, is taken as it is.
local function under(base, f)
  local dir = type(f.directory) == "string" and f.directory or ""
  if dir:find("^/") or dir == base or dir:sub(1, #base + 1) == base .. "/" then return f.path end
  return base .. "/" .. f.path
end

--- s:files{ path =, recursive = } -> { {name, size, modified, ...}, ... }
function Session:files(opts)
  local o = check_opts("files", opts, FILES_OPTS)
  if o.path and self.generation == 1 then self:_need("files", "gen2", "the path option") end
  if o.recursive then self:_need("files", "recursive", "the recursive option") end
  local req = protocol.list(self.generation, self.id, self.api_version, o)
  local base = o.path and o.path:gsub("^/mnt/data/?", ""):gsub("^/+", ""):gsub("/+$", "")
  if base == "" then base = nil end
  local all = {}
  local origin = self.endpoint:match("^(%a[%w+.-]*://[^/?#]*)")
  for _ = 1, 1000 do
    local res = self:_send(req)
    local list, next_link = parse("files", res, protocol.parse_files, self.generation, decode("files", res))
    if base then
      for _, f in ipairs(list) do f.path = under(base, f) end
    end
    table.move(list, 1, #list, #all + 1, all)
    if type(next_link) ~= "string" or next_link == "" then break end
    if next_link:sub(1, 1) == "/" then next_link = origin .. next_link
    elseif not next_link:find("^%a[%w+.-]*://") then next_link = protocol.url(self.endpoint, next_link) end
    if next_link:match("^(%a[%w+.-]*://[^/?#]*)") ~= origin then
      errors.raise{ kind = "protocol", op = "files", message = "nextLink points to another host; not following it" }
    end
    req = { op = "files", method = "GET", url = next_link, idempotent = true }
  end
  return all
end

--- s:file(name) -> file entry (metadata)
function Session:file(name)
  local ok, why = protocol.check_name("file info", name)
  if not ok then usage("file info", "%s", why) end
  if self.generation == 1 then
    local _, base = protocol.split_name(name)
    local want = name:gsub("^/mnt/data/", "")
    for _, f in ipairs(self:files()) do
      if f.name == want or f.name == base and not want:find("/") then return f end
    end
    errors.raise{ kind = "http", op = "file info", status = 404, code = "FileNotFound",
                  message = ("no file %q in session %s"):format(want, short_id(self.id)) }
  end
  local res = self:_send(protocol.file_info(self.generation, self.id, self.api_version, name))
  return parse("file info", res, protocol.parse_file, 2, decode("file info", res))
end

--- s:delete(name) -> true (second generation)
function Session:delete(name)
  local ok, why = protocol.check_name("delete file", name)
  if not ok then usage("delete file", "%s", why) end
  self:_need("delete file", "gen2", "deleting a file")
  self:_send(protocol.delete_file(self.generation, self.id, self.api_version, name))
  return true
end

-- Session and pool ------------------------------------------------------------------

--- s:info() -> { id, created, last_accessed, expires, etag, raw }
function Session:info()
  local res = self:_send(protocol.get_session(2, self.id, self:_mgmt_version("sessions")))
  return parse("session", res, protocol.parse_session, decode("session", res))
end

--- s:stop() -> true (2025-10-02-preview: stop the session's container)
function Session:stop()
  self:_send(protocol.stop_session(2, self.id, self:_mgmt_version("stop")))
  return true
end

--- s:list_sessions() -> { {id, created, ...}, ... } (every session of the pool)
function Session:list_sessions()
  local version = self:_mgmt_version("sessions")
  local all, skip = {}, nil
  for _ = 1, 1000 do
    local res = self:_send(protocol.list_sessions(2, version, skip))
    local list, next_link = parse("list sessions", res, protocol.parse_sessions, decode("list sessions", res))
    table.move(list, 1, #list, #all + 1, all)
    if type(next_link) ~= "string" or next_link == "" or #list == 0 then break end
    skip = #all
  end
  return all
end

--- s:metadata() -> { runtimes, packages, kernel, created, updated, raw }
function Session:metadata()
  local res = self:_send(protocol.metadata(2, self:_mgmt_version("sessions")))
  return parse("metadata", res, protocol.parse_metadata, decode("metadata", res))
end

-- Lifecycle -------------------------------------------------------------------------

--- s:close() -> true: delete the session on the pool, free the connection.
function Session:close()
  if self.closed then return true end
  local err
  if self.used then
    local ok, e = pcall(self._send, self, protocol.delete_session(2, self.id, self:_mgmt_version("sessions")))
    if not ok and not (errors.is(e, "http") and e.status == 404) then err = e end
  end
  self.closed = true
  if self._http then self._http:close(); self._http = nil end
  if err then error(err, 0) end
  return true
end

-- As a to-be-closed variable: closed on the way out; while an error unwinds,
-- a failure to close must not hide the error that is on its way.
function Session:__close(err)
  if err ~= nil then pcall(self.close, self) else self:close() end
end

-- A session object that is collected frees its connection (the client's own
-- __gc does that too); it does not send a request from the collector.
function Session:__gc()
  if self._http then self._http:close() end
end

--- s:restart() -> new id: close this session on the pool, go on under a new id.
function Session:restart(id)
  if id ~= nil and (type(id) ~= "string" or #id < 4 or #id > 128) then
    usage("restart", "id must be 4 to 128 characters")
  end
  if self.used and not self.closed then
    local ok, e = pcall(self._send, self, protocol.delete_session(2, self.id, self:_mgmt_version("sessions")))
    if not ok and not (errors.is(e, "http") and e.status == 404) then
      log("warn", "restart: could not delete session " .. short_id(self.id) .. ": " .. tostring(e))
    end
  end
  self.id = id or uuid4()
  self.used, self.closed = false, false
  return self.id
end

-- Pool-wide operations without a session of one's own ----------------------------------

local function with_pool(opts, f)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  if o.api_version == nil then o.api_version = protocol.LATEST_VERSION end
  local s = sessions.new(o)
  local ok, a = pcall(f, s)
  s.used = false            -- nothing of its own to delete
  s:close()
  if not ok then error(a, 0) end
  return a
end

function sessions.list_sessions(opts) return with_pool(opts, Session.list_sessions) end
function sessions.metadata(opts) return with_pool(opts, Session.metadata) end

-- Images ------------------------------------------------------------------------------

sessions.is_image = image.is_image
sessions.decode_image = image.decode
function sessions.save_image(v, path) return (image.save(v, path)) end

-- Parallel work ------------------------------------------------------------------------

-- Run functions at once: every request they make shares one transfer engine,
-- so eight executions on eight sessions take as long as the slowest.
-- Returns their first results in order; raises the first error after all ended.
function sessions.gather(...)
  local fns = table.pack(...)
  if fns.n == 1 and type(fns[1]) == "table" then fns = fns[1]; fns.n = #fns end
  for i = 1, fns.n do
    if type(fns[i]) ~= "function" then usage("gather", "argument %d is a %s, not a function", i, type(fns[i])) end
  end
  local results, errs = http.run(fns)
  if errs then
    for i = 1, fns.n do if errs[i] ~= nil then error(errs[i], 0) end end
  end
  return table.unpack(results, 1, fns.n)
end

--- sessions.parallel(list, fn [, { limit =, errors = "raise" | "collect" }]) -> results [, errors]
function sessions.parallel(list, fn, opts)
  local o = check_opts("parallel", opts, set{ "limit", "errors" })
  if type(list) ~= "table" then usage("parallel", "a list is expected, got %s", type(list)) end
  if type(fn) ~= "function" then usage("parallel", "a function is expected, got %s", type(fn)) end
  local n = #list
  local limit = math.min(o.limit or n, n)
  local results, errs, nexti = {}, {}, 1
  local workers = {}
  for w = 1, limit do
    workers[w] = function()
      while nexti <= n do
        local i = nexti
        nexti = nexti + 1
        local ok, v = pcall(fn, list[i], i)
        if ok then results[i] = v else errs[i] = v end
      end
    end
  end
  if limit > 0 then
    local _, werrs = http.run(workers)
    if werrs then for _, e in pairs(werrs) do error(e, 0) end end
  end
  if o.errors == "collect" then return results, next(errs) and errs or nil end
  for i = 1, n do if errs[i] ~= nil then error(errs[i], 0) end end
  return results
end

sessions.Session = Session
sessions.Result = Result
sessions.ShellResult = ShellResult
sessions.credential = auth.chain
sessions.localpool = localpool
sessions.uuid4 = uuid4

return sessions
