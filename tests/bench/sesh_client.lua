-- sesh_client.lua — the sesh side of the bench: the same operations as
-- alt_client.py, written the way a user writes a sesh script.
--
--   sesh tests/bench/sesh_client.lua OP ENDPOINT TOKEN_FILE [ARGS...]
--
-- Each OP prints one JSON object on stdout, {"samples": [seconds...], ...};
-- timing covers the client's whole work (request, answer, decoding), nothing
-- of the set-up. The clock is sessions.core's monotonic one, the clock of
-- every timing in sesh and its tests.

local sessions = require "sessions"
local core = require "sessions.core"
local clock = { now = core.monotonic, sleep = core.sleep }
local cjson = require "cjson"

local op, endpoint, token_file = arg[1], arg[2], arg[3]
local args = { table.unpack(arg, 4) }

local function read_token(path)
  local f = assert(io.open(path, "rb"))
  local t = f:read("a"):gsub("%s+$", "")
  f:close()
  return t
end
local token = read_token(token_file)

local counter = 0
local function new_id()
  counter = counter + 1
  return ("bench-%d-%d-%d"):format(math.floor(clock.now() * 1e6) % 1000000000, counter,
                                   math.random(1 << 30))
end

-- ENDPOINT is a URL, or unix:PATH for a pool on a unix socket (as the local
-- pool that the module starts by itself listens). The first generation's
-- routes, as alt_client.py and roundtrip_http use: the same requests on
-- both sides of a row.
local API = "2024-02-02-preview"
local function open(id)
  local socket = endpoint:match("^unix:(.+)")
  return sessions.new{ endpoint = socket and "http://localhost" or endpoint, api_version = API,
                       unix_socket = socket, token = token, id = id or new_id() }
end

-- Frees the session on the pool (close deletes it there) and its connection.
local function finish(s)
  s:close()
end

local function check_42(r)
  if r.status ~= "Success" or r.result ~= 42 then
    error(("6 * 7 answered %s %s: %s"):format(tostring(r.status), tostring(r.result),
                                              tostring(r.stderr)), 0)
  end
end

local function timed(fn, ...)
  local t0 = clock.now()
  fn(...)
  return clock.now() - t0
end

local ops = {}

function ops.roundtrip(n, warm)
  local s = open()
  for _ = 1, tonumber(warm or 10) do check_42(s:execute("6 * 7")) end
  local samples = {}
  for i = 1, tonumber(n) do
    samples[i] = timed(function() check_42(s:execute("6 * 7")) end)
  end
  finish(s)
  return { samples = samples }
end

-- The same request through sessions.http alone, the module's face bypassed:
-- what the transport and the pool cost, without the Lua layers above.
function ops.roundtrip_http(n, warm)
  local http = require "sessions.http"
  local c = http.client{}
  local id = new_id()
  local url = endpoint:gsub("/$", "") .. "/code/execute?api-version=" .. API .. "&identifier=" .. id
  local req = {
    method = "POST", url = url,
    headers = { ["Content-Type"] = "application/json", Authorization = "Bearer " .. token },
    body = cjson.encode{ properties = { codeInputType = "inline", executionType = "synchronous",
                                        code = "6 * 7" } },
  }
  local function once()
    local res = c:request(req)
    if res.status ~= 200 then error("HTTP " .. res.status .. ": " .. tostring(res.body), 0) end
    local props = cjson.decode(res.body).properties
    check_42({ status = props.status, result = props.result, stderr = props.stderr })
  end
  for _ = 1, tonumber(warm or 10) do once() end
  local samples = {}
  for i = 1, tonumber(n) do samples[i] = timed(once) end
  c:close()
  return { samples = samples }
end

-- First execute on a new identifier, n times, gap seconds apart so the pool
-- can refill its ready sandboxes.
function ops.alloc(n, gap)
  local samples, headers = {}, {}
  for i = 1, tonumber(n) do
    local s = open()
    local t0 = clock.now()
    local r = s:execute("6 * 7")
    samples[i] = clock.now() - t0
    check_42(r)
    headers[i] = {}
    for k, v in pairs(r.headers or {}) do
      if k:find("^x%-ms%-") then headers[i][k] = v end
    end
    finish(s)
    clock.sleep(tonumber(gap))
  end
  return { samples = samples, headers = headers }
end

-- k new identifiers at once, each with a first execute; time until all
-- answered. The parallelism is the module's own: one transfer engine, one
-- thread, many requests in flight.
function ops.burst(k, reps, gap)
  local samples = {}
  for rep = 1, tonumber(reps) do
    local list = {}
    for i = 1, tonumber(k) do list[i] = open() end
    local t0 = clock.now()
    sessions.parallel(list, function(s) check_42(s:execute("6 * 7")) end)
    samples[rep] = clock.now() - t0
    sessions.parallel(list, finish)
    clock.sleep(tonumber(gap))
  end
  return { samples = samples }
end

-- Sessions prefix-1..prefix-k (opened by the driver beforehand, shared with
-- the Python client) in parallel, each running per_session trivial cells.
function ops.throughput(prefix, k, per_session, reps)
  local list = {}
  for i = 1, tonumber(k) do list[i] = open(prefix .. "-" .. i) end
  -- connect, and check every session answers
  sessions.parallel(list, function(s) check_42(s:execute("6 * 7")) end)
  local function work(s)
    for _ = 1, tonumber(per_session) do s:execute("6 * 7") end
  end
  local samples = {}
  for rep = 1, tonumber(reps) do
    samples[rep] = timed(sessions.parallel, list, work)
  end
  -- No s:close(): that would delete the sessions the Python client uses too;
  -- the collector frees the connections at exit without a request.
  return { samples = samples, executions = tonumber(k) * tonumber(per_session) }
end

function ops.upload(path, reps)
  local s = open()
  check_42(s:execute("6 * 7"))
  local f = assert(io.open(path, "rb"))
  local size = f:seek("end")
  f:close()
  local samples = {}
  for i = 1, tonumber(reps) do
    samples[i] = timed(s.upload, s, { name = "bench.bin", file = path })
  end
  local listed
  for _, f in ipairs(s:files()) do
    if f.name == "bench.bin" then listed = f.size end
  end
  if listed ~= size then
    error(("uploaded %d bytes, the pool lists %s"):format(size, tostring(listed)), 0)
  end
  finish(s)
  return { samples = samples, bytes = size }
end

-- The session ident already holds bench.bin (the driver put it there with
-- another process, so this one's peak memory is the download's alone; the
-- Python client downloads from the same session).
function ops.download(ident, size, reps, out)
  local s = open(ident)
  local samples = {}
  for i = 1, tonumber(reps) do
    samples[i] = timed(s.download, s, "bench.bin", out)
    local g = assert(io.open(out, "rb"))
    local got = g:seek("end")
    g:close()
    if got ~= tonumber(size) then error(("downloaded %d of %s bytes"):format(got, size), 0) end
  end
  os.remove(out)   -- no s:close(): the session stays for the other client
  return { samples = samples, bytes = tonumber(size) }
end

local fn = ops[op]
if not fn or not endpoint or not token_file then
  local names = {}
  for k in pairs(ops) do names[#names + 1] = k end
  table.sort(names)
  io.stderr:write("usage: sesh sesh_client.lua ", table.concat(names, "|"),
                  " ENDPOINT TOKEN_FILE [ARGS...]\n")
  os.exit(2)
end
io.write(cjson.encode(fn(table.unpack(args))), "\n")
