-- sessions.protocol — the pool management API on the wire, both generations.
--
-- Knows URLs, query strings, request bodies and the shapes of answers
-- (pool-api.md sections 1, 4, 5 and 6); knows nothing of HTTP clients, tokens
-- or Lua sessions.  Each builder returns a request description
--
--   { op = "execute", method = "POST", path = "code/execute", query = { {k, v}, ... },
--     body = "...", headers = { ... }, idempotent = bool }
--
-- and each parser turns a decoded answer into the normalized tables the
-- module's face returns (with the decoded answer kept as `raw`).

local json = require "sessions.json"
local errors = require "sessions.errors"

local protocol = {}

protocol.SCOPE = "https://dynamicsessions.io/.default"
protocol.RESOURCE = "https://dynamicsessions.io"

-- The API versions, oldest first, and what each one has.  This table is the
-- one place the client writes these facts: the face's checks and messages
-- come from it, and tests/pool/routes_spec.lua checks that sesh-pool's routes
-- (host/pool/route.c) serve exactly it.  Features:
--   gen2       executions by id (asynchronous too), file metadata, deleting a file,
--              a directory (`path`) for file operations
--   sessions   the session itself (GET/DELETE session), listSessions, metadata
--   shell      shell commands (shellCommand, execCommandAndArgs) as executions
--   recursive  listing files recursively
--   stop       stopping a session's container (.management/stopSession)
--   jupyter    results as the text IPython shows (returnJupyterFormatExecutionResult)
protocol.VERSIONS = {
  { name = "2024-02-02-preview", gen = 1 },
  { name = "2024-08-02-preview", gen = 1 },
  { name = "2024-10-02-preview", gen = 2, gen2 = true },
  { name = "2025-02-02-preview", gen = 2, gen2 = true, sessions = true, shell = true },
  { name = "2025-10-02-preview", gen = 2, gen2 = true, sessions = true, shell = true,
    recursive = true, stop = true, jupyter = true },
}
protocol.LATEST_VERSION = protocol.VERSIONS[#protocol.VERSIONS].name
-- The default is the newest: it is the one version on which every call of
-- the module works (subdirectories listed and named, file info, delete,
-- recursive listings, session, stop); the first generation, which LangChain
-- and its peers speak, stays a choice (README "sessions.new").
protocol.DEFAULT_VERSION = protocol.LATEST_VERSION

-- The request builders below, each with the feature it needs (none: every version).
protocol.OPERATIONS = { "execute", "shell_execute", "get_execution", "upload", "list", "download",
                        "file_info", "delete_file", "get_session", "delete_session",
                        "list_sessions", "metadata", "stop_session" }
protocol.NEEDS = { shell_execute = "shell", get_execution = "gen2", file_info = "gen2",
                   delete_file = "gen2", get_session = "sessions", delete_session = "sessions",
                   list_sessions = "sessions", metadata = "sessions", stop_session = "stop" }

local by_name = {}
for _, v in ipairs(protocol.VERSIONS) do by_name[v.name] = v end

-- What a version can do.  An unknown but well-formed version is taken as the
-- dialect of the newest known one not after it, so a script can follow a
-- service update without a new sesh; nil before the first.
function protocol.features(version)
  if by_name[version] then return by_name[version] end
  if type(version) ~= "string" or not version:match("^%d%d%d%d%-%d%d%-%d%d") then return nil end
  local found
  for _, v in ipairs(protocol.VERSIONS) do
    if v.name:sub(1, 10) <= version:sub(1, 10) then found = v end
  end
  return found
end

-- The first version with a feature, and the names of all of them.
function protocol.since(feature)
  for _, v in ipairs(protocol.VERSIONS) do
    if v[feature] then return v.name end
  end
end

function protocol.known()
  local names = {}
  for i, v in ipairs(protocol.VERSIONS) do names[i] = v.name end
  return table.concat(names, ", ")
end

-- URL building -----------------------------------------------------------------

-- RFC 3986: everything but the unreserved characters is percent-encoded.
function protocol.escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

-- A remote file name as a path: each segment escaped, the slashes kept.
function protocol.escape_path(name)
  local segs = {}
  for seg in (name .. "/"):gmatch("([^/]*)/") do segs[#segs + 1] = protocol.escape(seg) end
  return table.concat(segs, "/")
end

-- endpoint + "/" + path + ("?" or "&") + query
function protocol.url(endpoint, path, query)
  local base = endpoint
  local q = ""
  local qpos = base:find("?", 1, true)
  if qpos then base, q = base:sub(1, qpos - 1), base:sub(qpos + 1) end
  if base:sub(-1) ~= "/" then base = base .. "/" end
  local parts = {}
  if q ~= "" then parts[1] = q end
  for _, kv in ipairs(query or {}) do
    parts[#parts + 1] = protocol.escape(kv[1]) .. "=" .. protocol.escape(kv[2])
  end
  local url = base .. path
  if #parts > 0 then url = url .. "?" .. table.concat(parts, "&") end
  return url
end

-- Remote names ---------------------------------------------------------------

-- "/mnt/data/a/b.csv" and "a/b.csv" name the same file; returns dir, base.
function protocol.split_name(name)
  name = name:gsub("^/mnt/data/", ""):gsub("^/+", "")
  local dir, base = name:match("^(.*)/([^/]*)$")
  if not dir then return "", name end
  return dir, base
end

function protocol.check_name(op, name)
  if type(name) ~= "string" or name == "" then
    return nil, "a remote file name (a non-empty string) is required"
  end
  local _, base = protocol.split_name(name)
  if base == "" then return nil, ("remote name %q names a directory, not a file"):format(name) end
  for seg in name:gsub("^/mnt/data/", ""):gmatch("[^/]+") do
    if seg == ".." or seg == "." then
      return nil, ("remote name %q must not contain '.' or '..' segments"):format(name)
    end
  end
  if name:find("%z") then return nil, "remote name contains a NUL byte" end
  return true
end

-- Requests -------------------------------------------------------------------

local function base_query(session_id, version, extra)
  local q = {}
  if session_id then q[#q + 1] = { "identifier", session_id } end
  q[#q + 1] = { "api-version", version }
  for _, kv in ipairs(extra or {}) do q[#q + 1] = kv end
  return q
end

local function gen2_body(code, o)
  local body = {
    codeInputType = o.base64 and "InlineBase64" or "Inline",
    executionType = o.async and "Asynchronous" or "Synchronous",
    code = code,
    timeoutInSeconds = o.timeout_s or 220,
  }
  if o.max_output then body.outputStreamsMaxLength = o.max_output end
  if o.jupyter then body.returnJupyterFormatExecutionResult = true end
  return body
end

-- o: { async, timeout_s, max_output, jupyter, base64, operation_id }
function protocol.execute(gen, id, version, code, o)
  o = o or {}
  if gen == 1 then
    local props = { codeInputType = "inline", executionType = "synchronous", code = code }
    if o.timeout_s then props.timeoutInSeconds = o.timeout_s end
    return { op = "execute", method = "POST", path = "code/execute",
             query = base_query(id, version), body = json.encode{ properties = props },
             content_type = "application/json" }
  end
  local headers = {}
  if o.operation_id then headers["operation-id"] = o.operation_id end
  return { op = "execute", method = "POST", path = "executions", headers = headers,
           query = base_query(id, version), body = json.encode(gen2_body(code, o)),
           content_type = "application/json" }
end

-- A shell command (pool-api.md section 9): always POST executions.
-- o: { args (a list: execCommandAndArgs instead of command), stdin, timeout_s,
--      max_output, async, operation_id }.  With none of them the body is
-- LangChain's: {"shellCommand": command}.
function protocol.shell_execute(gen, id, version, command, o)
  o = o or {}
  local keys, body = {}, {}
  local function put(k, v) if v ~= nil then keys[#keys + 1] = k; body[k] = v end end
  if o.args then put("execCommandAndArgs", json.array(o.args)) else put("shellCommand", command) end
  put("stdin", o.stdin)
  if o.async then put("executionType", "Asynchronous") end
  put("timeoutInSeconds", o.timeout_s)
  put("outputStreamsMaxLength", o.max_output)
  local headers = {}
  if o.operation_id then headers["operation-id"] = o.operation_id end
  return { op = "shell", method = "POST", path = "executions", headers = headers,
           query = base_query(id, version), body = json.encode(json.object(keys, body)),
           content_type = "application/json" }
end

function protocol.get_execution(gen, id, version, exec_id)
  return { op = "get execution", method = "GET", idempotent = true,
           path = "executions/" .. protocol.escape(exec_id), query = base_query(id, version) }
end

-- Upload: the remote name goes in the part's filename (generation 1: with its
-- subdirectory; generation 2: the directory goes in the `path` query).
function protocol.upload(gen, id, version, name)
  local dir, base = protocol.split_name(name)
  if gen == 1 then
    return { op = "upload", method = "POST", path = "files/upload", idempotent = true,
             query = base_query(id, version),
             filename = dir ~= "" and (dir .. "/" .. base) or base }
  end
  local extra = dir ~= "" and { { "path", dir } } or nil
  return { op = "upload", method = "POST", path = "files", idempotent = true,
           query = base_query(id, version, extra), filename = base }
end

-- o: { path, recursive }
function protocol.list(gen, id, version, o)
  o = o or {}
  local extra = {}
  if o.path and o.path ~= "" then extra[#extra + 1] = { "path", (o.path:gsub("^/mnt/data/?", "")) } end
  if o.recursive then extra[#extra + 1] = { "recursive", "true" } end
  return { op = "files", method = "GET", path = "files", idempotent = true,
           query = base_query(id, version, extra) }
end

function protocol.download(gen, id, version, name)
  local dir, base = protocol.split_name(name)
  if gen == 1 then
    local rel = dir ~= "" and (dir .. "/" .. base) or base
    return { op = "download", method = "GET", idempotent = true,
             path = "files/content/" .. protocol.escape_path(rel), query = base_query(id, version) }
  end
  local extra = dir ~= "" and { { "path", dir } } or nil
  return { op = "download", method = "GET", idempotent = true,
           path = "files/" .. protocol.escape(base) .. "/content", query = base_query(id, version, extra) }
end

function protocol.file_info(gen, id, version, name)
  local dir, base = protocol.split_name(name)
  local extra = dir ~= "" and { { "path", dir } } or nil
  return { op = "file info", method = "GET", idempotent = true,
           path = "files/" .. protocol.escape(base), query = base_query(id, version, extra) }
end

function protocol.delete_file(gen, id, version, name)
  local dir, base = protocol.split_name(name)
  local extra = dir ~= "" and { { "path", dir } } or nil
  return { op = "delete file", method = "DELETE", idempotent = true,
           path = "files/" .. protocol.escape(base), query = base_query(id, version, extra) }
end

function protocol.get_session(gen, id, version)
  return { op = "session", method = "GET", path = "session", idempotent = true,
           query = base_query(id, version) }
end

function protocol.delete_session(gen, id, version)
  return { op = "close", method = "DELETE", path = "session", idempotent = true,
           query = base_query(id, version) }
end

function protocol.stop_session(gen, id, version)
  return { op = "stop", method = "POST", path = ".management/stopSession", idempotent = true,
           query = base_query(id, version) }
end

function protocol.list_sessions(gen, version, skip)
  local q = { { "api-version", version } }
  if skip then q[#q + 1] = { "skip", tostring(skip) } end
  return { op = "list sessions", method = "GET", path = "listSessions", idempotent = true, query = q }
end

function protocol.metadata(gen, version)
  return { op = "metadata", method = "GET", path = "metadata", idempotent = true,
           query = { { "api-version", version } } }
end

-- Answers ----------------------------------------------------------------------

local function nonnull(v)
  if v == json.null then return nil end
  return v
end
protocol.nonnull = nonnull

-- Python's None and a cell without a final expression both give "".
local status_names = {
  success = "Success", succeeded = "Success",
  failure = "Failure", failed = "Failure",
  running = "Running", notstarted = "Running",
  canceled = "Canceled", cancelled = "Canceled",
}

local function norm_status(s)
  if type(s) ~= "string" then return nil end
  return status_names[s:lower()] or s
end
protocol.norm_status = norm_status

local function str(v)
  v = nonnull(v)
  if v == nil then return "" end
  return type(v) == "string" and v or tostring(v)
end

-- An answer that breaks the API: a "protocol" error value (the caller adds
-- its own operation and the answer's status).
local function bad(op, what)
  errors.raise{ kind = "protocol", op = op, message = "unexpected answer: " .. what }
end
protocol.bad = bad

-- Execute answer of either generation -> { status, stdout, stderr, result, ms, id, error, raw }.
function protocol.parse_execution(gen, doc)
  if type(doc) ~= "table" then bad("execute", "the answer is not a JSON object") end
  if gen == 1 then
    local p = doc.properties
    if type(p) ~= "table" then bad("execute", "the answer has no 'properties' object") end
    return {
      status = norm_status(p.status) or bad("execute", "the answer has no 'status'"),
      stdout = str(p.stdout), stderr = str(p.stderr),
      result = nonnull(p.result),
      ms = tonumber(nonnull(p.executionTimeInMilliseconds)),
      raw = doc,
    }
  end
  local res = nonnull(doc.result)
  if res ~= nil and type(res) ~= "table" then bad("execute", "'result' is not an object") end
  res = res or {}
  local r = {
    status = norm_status(doc.status) or bad("execute", "the answer has no 'status'"),
    stdout = str(res.stdout), stderr = str(res.stderr),
    result = nonnull(res.executionResult),
    ms = tonumber(nonnull(res.executionTimeInMilliseconds)),
    id = nonnull(doc.id),
    raw = doc,
  }
  local err = nonnull(doc.error)
  if type(err) == "table" then
    r.error = { code = nonnull(err.code), message = nonnull(err.message) }
    if r.stderr == "" and r.error.message then r.stderr = tostring(r.error.message) end
  end
  return r
end

-- Python's int(s) for an exit code: of a string, blanks around it, a sign,
-- digits with single underscores between them; a number towards zero; a
-- boolean as 1 or 0; nil for anything else (where int() raises).
function protocol.exit_code(s)
  if math.type(s) == "integer" then return s end
  if math.type(s) == "float" then
    if s ~= s or s == math.huge or s == -math.huge then return nil end
    return math.tointeger(s < 0 and math.ceil(s) or math.floor(s))
  end
  if type(s) == "boolean" then return s and 1 or 0 end
  if type(s) ~= "string" then return nil end
  local t = s:match("^%s*(.-)%s*$")
  local sign, digits = t:match("^([+-]?)(%d[%d_]*)$")
  if not digits or digits:find("__", 1, true) or digits:find("_$") then return nil end
  local n = math.tointeger(tonumber((digits:gsub("_", ""))))
  if not n then return nil end
  return sign == "-" and -n or n
end

-- A shell command's execution (section 9; status: the exit code as a string)
-- -> { exit_code, running, stdout, stderr, ms, id, error, raw }.
function protocol.parse_shell_execution(doc)
  if type(doc) ~= "table" then bad("shell", "the answer is not a JSON object") end
  local res = nonnull(doc.result)
  if res ~= nil and type(res) ~= "table" then bad("shell", "'result' is not an object") end
  res = res or {}
  local status = nonnull(doc.status)
  local r = {
    running = norm_status(status) == "Running",
    exit_code = protocol.exit_code(status),
    stdout = str(res.stdout), stderr = str(res.stderr),
    ms = tonumber(nonnull(res.executionTimeInMilliseconds)),
    id = nonnull(doc.id),
    raw = doc,
  }
  if not r.running and r.exit_code == nil then
    bad("shell", ("the status %s is not an exit code"):format(json.encode(status or json.null)))
  end
  local err = nonnull(doc.error)
  if type(err) == "table" then r.error = { code = nonnull(err.code), message = nonnull(err.message) } end
  return r
end

-- One file of either generation -> { name, size, modified, type, content_type, directory, raw }.
local function parse_file(gen, f)
  if type(f) ~= "table" then bad("files", "a file entry is not an object") end
  if gen == 1 then
    local p = type(f.properties) == "table" and f.properties or f
    local name = nonnull(p.filename) or nonnull(p.name)
    if type(name) ~= "string" then bad("files", "a file entry has no 'filename'") end
    name = name:gsub("^/mnt/data/", "")
    return { name = name, path = name, size = tonumber(nonnull(p.size)), modified = nonnull(p.lastModifiedTime),
             type = "file", raw = f }
  end
  local name = nonnull(f.name)
  if type(name) ~= "string" then bad("files", "a file entry has no 'name'") end
  local dir = nonnull(f.directory)
  local t = nonnull(f.type)
  return {
    name = name,
    path = (type(dir) == "string" and dir ~= "") and (dir:gsub("^/mnt/data/?", ""):gsub("/$", "") .. "/" .. name):gsub("^/", "") or name,
    size = tonumber(nonnull(f.sizeInBytes)),
    modified = nonnull(f.lastModifiedAt),
    type = type(t) == "string" and t:lower() or "file",
    content_type = nonnull(f.contentType),
    directory = dir,
    raw = f,
  }
end
protocol.parse_file = parse_file

-- A file list (either generation; the first generation's upload answer too).
function protocol.parse_files(gen, doc)
  if type(doc) ~= "table" then bad("files", "the answer is not a JSON object") end
  local value = nonnull(doc.value)
  if type(value) ~= "table" then bad("files", "the answer has no 'value' list") end
  local list = {}
  for i, f in ipairs(value) do list[i] = parse_file(gen, f) end
  return list, nonnull(doc.nextLink)
end

function protocol.parse_session(doc)
  if type(doc) ~= "table" then bad("session", "the answer is not a JSON object") end
  return {
    id = nonnull(doc.identifier),
    created = nonnull(doc.createdAt),
    last_accessed = nonnull(doc.lastAccessedAt),
    expires = nonnull(doc.expireAt),
    etag = nonnull(doc.etag),
    raw = doc,
  }
end

function protocol.parse_sessions(doc)
  if type(doc) ~= "table" or type(nonnull(doc.sessions)) ~= "table" then
    bad("list sessions", "the answer has no 'sessions' list")
  end
  local list = {}
  for i, s in ipairs(doc.sessions) do list[i] = protocol.parse_session(s) end
  return list, nonnull(doc.nextLink)
end

local function name_versions(list)
  local out = {}
  for i, x in ipairs(type(nonnull(list)) == "table" and list or {}) do
    out[i] = { name = nonnull(x.name), version = nonnull(x.version) }
  end
  return out
end

function protocol.parse_metadata(doc)
  if type(doc) ~= "table" then bad("metadata", "the answer is not a JSON object") end
  local k = nonnull(doc.jupyterKernel)
  return {
    runtimes = name_versions(doc.runtimes),
    packages = name_versions(doc.preInstalledPackages),
    kernel = type(k) == "table" and { name = nonnull(k.name), version = nonnull(k.version),
                                      project_url = nonnull(k.projectUrl),
                                      description = nonnull(k.description) } or nil,
    created = nonnull(doc.createdAt),
    updated = nonnull(doc.lastUpdatedAt),
    raw = doc,
  }
end

-- The service's error from an answer: code and message from the body
-- ({"error": {"code", "message"}}, or an RFC 7807 problem, or Entra's
-- {"error", "error_description"}), the code also from x-ms-error-code.
function protocol.parse_error(headers, body)
  headers = headers or {}
  local code, message = headers["x-ms-error-code"], nil
  if type(body) == "string" and body ~= "" then
    local ok, doc = pcall(json.decode, body)
    if ok and type(doc) == "table" then
      local e = nonnull(doc.error)
      if type(e) == "table" then
        code = nonnull(e.code) or code
        message = nonnull(e.message)
      elseif type(e) == "string" then
        code = code or e
        message = nonnull(doc.error_description)
      end
      message = message or nonnull(doc.message) or nonnull(doc.detail) or nonnull(doc.title)
      code = code or nonnull(doc.code)
    elseif not ok or type(doc) ~= "table" then
      local ctype = headers["content-type"] or ""
      if ctype:find("^text/plain") or #body < 300 then
        message = body:gsub("%s+$", "")
      end
    end
  end
  local request_id = headers["x-ms-request-id"] or headers["apim-request-id"]
      or headers["x-request-id"] or headers["x-ms-client-request-id"]
  return code and tostring(code) or nil, message and tostring(message) or nil, request_id
end

return protocol
