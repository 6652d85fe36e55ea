-- Connections under hostile load: thousands of idle and slow sockets, a client
-- address past its bound, a pool near its connection limit. Clients with the
-- token keep getting answers, and slow requests are cut at their deadline.
-- The crowd is tests/support/hold_sockets.py, from other loopback addresses.
-- Over TLS too: a handshake that never ends is one more trickle to cut.
local support = require "support.pool"
local mcpt = require "support.mcp"
local tls = require "support.tls"
local util = require "support.util"
local cjson = require "cjson"

local PYTHON = os.getenv("PYTHON") or "/usr/bin/python3"
local V1 = "2024-02-02-preview"

-- A crowd of connections held by hold_sockets.py (see its header for groups).
local Holder = {}
Holder.__index = Holder
local holders = 0

local function hold(pool, groups)
  holders = holders + 1
  local base = ("%s/holder%d"):format(pool.dir, holders)
  local self = setmetatable({ report = base .. ".report", stop_file = base .. ".stop",
                              log = base .. ".log" }, Holder)
  util.write(base .. ".json", cjson.encode(groups))
  local host, port = pool.endpoint:match("https?://([^:]+):(%d+)")
  self.pid = tonumber(support.sh(("%s tests/support/hold_sockets.py %s %s %s %s %s >%s 2>&1 & echo $!")
    :format(PYTHON, host, port, util.quote(base .. ".json"), util.quote(self.report),
            util.quote(self.stop_file), util.quote(self.log))):match("%d+"))
  return self
end

-- Every line so far, split in words; `closed` lines with numbers.
function Holder:events()
  local list = {}
  for line in (util.read(self.report) or ""):gmatch("[^\n]+") do
    local w = {}
    for word in line:gmatch("%S+") do w[#w + 1] = word end
    local e = { kind = w[1], name = w[2], line = line }
    if e.kind == "closed" then
      e.seconds, e.sent, e.answered = tonumber(w[3]), tonumber(w[4]), w[5] == "1"
    elseif e.kind == "answer" then
      e.status, e.text = tonumber(w[3]), line:match("^answer %S+ %S+ (.*)$")
    end
    list[#list + 1] = e
  end
  return list
end

function Holder:count(kind, name)
  local n = 0
  for _, e in ipairs(self:events()) do
    if e.kind == kind and e.name == name then n = n + 1 end
  end
  return n
end

-- Waits until ready() holds (polling the report); fails saying `what`.
function Holder:wait(what, ready, seconds)
  for _ = 1, (seconds or 60) * 20 do
    if ready(self) then return end
    if not support.alive(self.pid) then break end
    support.sleep(0.05)
  end
  error(("hold_sockets.py: no %s; its log: %s; its report ends: %s"):format(what, util.read(self.log) or "",
        (util.read(self.report) or ""):sub(-600)), 2)
end

function Holder:wait_open(name, n)
  self:wait("'open " .. name .. "'", function(h)
    for _, e in ipairs(h:events()) do
      if e.kind == "open" and e.name == name then return true end
    end
    return false
  end)
  local failed = {}
  for _, e in ipairs(self:events()) do
    if e.kind == "failed" then failed[#failed + 1] = e.line end
  end
  assert.are.same({}, failed)
end

function Holder:stop()
  util.write(self.stop_file, "")
  for _ = 1, 200 do
    if not support.alive(self.pid) then return end
    support.sleep(0.05)
  end
  os.execute("kill " .. self.pid .. " 2>/dev/null")
end

local function addresses(first, n)
  local list = {}
  for i = 0, n - 1 do list[#list + 1] = "127.0.0." .. (first + i) end
  return list
end

local function execute_request(pool, identifier, code, token)
  local body = cjson.encode{ properties = { codeInputType = "inline", executionType = "synchronous",
                                            code = code } }
  return ("POST /code/execute?api-version=%s&identifier=%s HTTP/1.1\r\nHost: x\r\n%s" ..
          "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s")
    :format(V1, identifier, token and ("Authorization: Bearer " .. token .. "\r\n") or "", #body, body)
end

describe("sesh-pool connections", function()
  it("answers a client with the token while thousands of idle and trickling sockets are held, " ..
     "and cuts the trickling ones at their deadline", function()
    local pool = support.start{ args = { "--header-timeout", "2", "--min-body-rate", "64" } }
    local holder
    finally(function()
      if holder then holder:stop() end
      pool:stop(); pool:cleanup()
    end)
    local slow_head = "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " .. ("a"):rep(200) .. "\r\n\r\n"
    local unauthorized = execute_request(pool, "conn-nobody", "1 + 1", nil)
    local boundary = "sesh-slow-upload"
    local part = ("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.bin\"\r\n" ..
                  "Content-Type: application/octet-stream\r\n\r\n%s\r\n--%s--\r\n")
                 :format(boundary, ("z"):rep(2000), boundary)
    local upload_head = ("POST /files/upload?api-version=%s&identifier=conn-slow HTTP/1.1\r\nHost: x\r\n" ..
                         "Authorization: Bearer %s\r\nContent-Type: multipart/form-data; boundary=%s\r\n" ..
                         "Content-Length: %d\r\n\r\n"):format(V1, pool.token, boundary, #part)
    local first = { idle = 0, headers = 0, bodies = #unauthorized - 40, upload = #upload_head + 10 }
    holder = hold(pool, {
      { name = "idle", count = 2000, from = addresses(2, 4), reopen = true },
      { name = "headers", count = 200, from = addresses(6, 2), request = slow_head, first = first.headers,
        every = 0.5 },
      { name = "bodies", count = 100, from = addresses(8, 1), request = unauthorized,
        first = first.bodies, every = 0.5 },
      { name = "upload", count = 5, from = addresses(9, 1), request = upload_head .. part,
        first = first.upload, every = 0.5 },
    })
    holder:wait_open("idle", 2000)
    holder:wait_open("headers", 200)
    holder:wait_open("bodies", 100)
    holder:wait_open("upload", 5)

    -- Meanwhile a client with the token executes and uploads, until every
    -- trickling request was cut.
    local rounds = 0
    local function all_cut(h)
      return h:count("closed", "headers") == 200 and h:count("closed", "bodies") == 100 and
             h:count("closed", "upload") == 5
    end
    repeat
      rounds = rounds + 1
      local res, p = pool:execute("n = globals().get('n', 0) + 1\nn", { identifier = "conn-busy" })
      assert.are.equal(200, res.status)
      assert.are.equal(rounds, p.result)
      local data = ("round %d "):format(rounds):rep(1000)
      local up = pool:request{ method = "POST", path = "files/upload", identifier = "conn-busy",
                               multipart = { { name = "file", filename = "data.txt", data = data } } }
      assert.are.equal(200, up.status)
      local down = pool:request{ path = "files/content/data.txt", identifier = "conn-busy" }
      assert.are.equal(data, down.body)
    until (rounds >= 3 and all_cut(holder)) or rounds >= 2000
    holder:wait("every trickling request cut", all_cut)

    -- Ended by the pool, not before their deadline, trickling till then
    -- (a byte every half second: libmicrohttpd's idle timeout never fires).
    for _, e in ipairs(holder:events()) do
      if e.kind == "closed" then
        assert.is_true(e.seconds >= 1.99, e.line)     -- the pool counts whole milliseconds
        assert.is_false(e.answered, e.line)
        if e.name ~= "idle" then assert.is_true(e.sent > first[e.name], e.line) end
      end
    end
    -- The cut upload left nothing behind, and the pool says what it cut.
    local res = pool:request{ path = "files/content/slow.bin", identifier = "conn-slow" }
    assert.are.equal(404, res.status)
    local log
    for _ = 1, 100 do
      log = pool:log()
      if log:match("connections: %d+ closed with headers not complete in time") then break end
      support.sleep(0.05)
    end
    assert.matches("connections: %d+ closed with headers not complete in time", log)
  end)

  it("refuses a client address past its bound of busy connections, lets others in, " ..
     "and lets an address's idle connections go for its new ones", function()
    local pool = support.start{ args = { "--max-per-client", "2" } }
    local busy, probe, idle, fresh
    finally(function()
      for _, h in ipairs{ busy, probe, idle, fresh } do h:stop() end
      pool:stop(); pool:cleanup()
    end)
    local wait_go = "import os, time\nopen('/mnt/data/started', 'w').close()\n" ..
                    "while not os.path.exists('/mnt/data/go'):\n    time.sleep(0.02)\n'released'"
    busy = hold(pool, {
      { name = "busy1", count = 1, from = { "127.0.0.10" }, request = execute_request(pool, "conn-b1", wait_go, pool.token) },
      { name = "busy2", count = 1, from = { "127.0.0.10" }, request = execute_request(pool, "conn-b2", wait_go, pool.token) },
    })
    for _, id in ipairs{ "conn-b1", "conn-b2" } do
      local started
      for _ = 1, 600 do
        started = pool:request{ path = "files/content/started", identifier = id }
        if started.status == 200 then break end
        support.sleep(0.05)
      end
      assert.are.equal(200, started.status)
    end

    -- 127.0.0.10 holds its two, both at work: a third is closed unanswered;
    -- another address gets in, and so does a client with the token.
    local health = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    probe = hold(pool, {
      { name = "third", count = 1, from = { "127.0.0.10" }, request = health },
      { name = "other", count = 1, from = { "127.0.0.11" }, request = health },
    })
    probe:wait("an end to the third connection", function(h) return h:count("closed", "third") == 1 end)
    probe:wait("an answer to the other address", function(h) return h:count("answer", "other") == 1 end)
    assert.are.equal(0, probe:count("answer", "third"))
    local _, p = pool:execute("6 * 7", { identifier = "conn-free" })
    assert.are.equal(42, p.result)

    -- Released, the busy ones are answered.
    for _, id in ipairs{ "conn-b1", "conn-b2" } do
      local up = pool:request{ method = "POST", path = "files/upload", identifier = id,
                               multipart = { { name = "file", filename = "go", data = "" } } }
      assert.are.equal(200, up.status)
    end
    busy:wait("both answers", function(h) return h:count("answer", "busy1") + h:count("answer", "busy2") == 2 end)
    for _, e in ipairs(busy:events()) do
      if e.kind == "answer" then
        assert.are.equal(200, e.status)
        assert.matches('"result":"released"', e.text)
      end
    end

    -- Idle connections that never showed the token make room for the
    -- address's new one: the oldest goes.
    idle = hold(pool, { { name = "idle", count = 2, from = { "127.0.0.12" } } })
    idle:wait_open("idle", 2)
    fresh = hold(pool, { { name = "fresh", count = 1, from = { "127.0.0.12" }, request = health } })
    fresh:wait("an answer from the address at its bound", function(h) return h:count("answer", "fresh") == 1 end)
    idle:wait("one idle connection let go", function(h) return h:count("closed", "idle") == 1 end)
  end)

  it("near its connection limit lets go of idle connections that never showed the token, " ..
     "never of one that did", function()
    -- No deadline comes in the test's time: a connection ends only when let go.
    local pool = support.start{ args = { "--max-connections", "40", "--header-timeout", "3600",
                                         "--idle-timeout", "3600" } }
    local first, second
    finally(function()
      for _, h in ipairs{ first, second } do h:stop() end
      pool:stop(); pool:cleanup()
    end)
    local _, p = pool:execute("6 * 7", { identifier = "conn-limit" })
    assert.are.equal(42, p.result)
    first = hold(pool, { { name = "idle", count = 60, from = addresses(13, 2) } })
    first:wait_open("idle", 60)
    -- 40 at most, room kept below: at least 60 - 35 idle ones were let go
    first:wait("idle connections let go", function(h) return h:count("closed", "idle") >= 25 end)
    local res = pool:execute("6 * 7", { identifier = "conn-limit" })
    assert.are.equal(200, res.status)
    assert.are.equal(0, res.connects)          -- its kept-alive connection stayed
    second = hold(pool, { { name = "idle", count = 60, from = addresses(15, 2) } })
    second:wait_open("idle", 60)
    second:wait("more idle connections let go", function(h) return h:count("closed", "idle") >= 20 end)
    res = pool:execute("6 * 7", { identifier = "conn-limit" })
    assert.are.equal(200, res.status)
    assert.are.equal(0, res.connects)
    for _, h in ipairs{ first, second } do
      for _, e in ipairs(h:events()) do
        if e.kind == "closed" then assert.are.equal(0, e.sent, e.line) end
      end
    end
  end)
  it("over TLS cuts handshakes that never finish at the header deadline, and answers a client " ..
     "with the token meanwhile", function()
    local dir = support.tmpdir()
    local ca = tls.make_ca(dir .. "/tls")
    local pool = support.start{ dir = dir, ca_file = ca.ca, args = { "--header-timeout", "2",
                                "--tls-cert", ca.cert, "--tls-key", ca.key } }
    local holder
    finally(function()
      if holder then holder:stop() end
      pool:stop(); pool:cleanup()
    end)
    holder = hold(pool, {
      { name = "silent", count = 300, from = addresses(20, 2) },     -- no handshake begun
      { name = "hello", count = 100, from = addresses(22, 1), tls_hello = true, first = 10, every = 0.5 },
    })
    holder:wait_open("silent", 300)
    holder:wait_open("hello", 100)
    local rounds = 0
    local function all_cut(h) return h:count("closed", "silent") == 300 and h:count("closed", "hello") == 100 end
    repeat
      rounds = rounds + 1
      local res, p = pool:execute("n = globals().get('n', 0) + 1\nn", { identifier = "conn-tls" })
      assert.are.equal(200, res.status)
      assert.are.equal(rounds, p.result)
    until (rounds >= 3 and all_cut(holder)) or rounds >= 2000
    holder:wait("every unfinished handshake cut", all_cut)
    for _, e in ipairs(holder:events()) do
      if e.kind == "closed" then
        assert.is_true(e.seconds >= 1.99, e.line)
        assert.is_false(e.answered, e.line)
        if e.name == "hello" then assert.is_true(e.sent > 10, e.line) end   -- trickled till then
      end
    end
  end)

  it("counts an MCP client with the key as one that showed the token", function()
    local pool = mcpt.http_pool{ args = { "--max-connections", "40", "--header-timeout", "3600",
                                          "--idle-timeout", "3600" } }
    local crowd
    finally(function()
      if crowd then crowd:stop() end
      pool:stop(); pool:cleanup()
    end)
    local ping = { jsonrpc = "2.0", id = 1, method = "ping" }
    assert.are.equal(200, mcpt.post(pool, ping).status)
    crowd = hold(pool, { { name = "idle", count = 60, from = addresses(23, 2) } })
    crowd:wait_open("idle", 60)
    crowd:wait("idle connections let go", function(h) return h:count("closed", "idle") >= 25 end)
    local res = mcpt.post(pool, ping)
    assert.are.equal(200, res.status)
    assert.are.equal(0, res.connects)          -- the MCP client's kept-alive connection stayed
  end)
  -- A lone client's request keeps the loop's thread while its code runs
  -- (workers.h): what comes meanwhile must be seen all the same.
  local wait_go = "import os, time\nopen('/mnt/data/started', 'w').close()\n" ..
                  "while not os.path.exists('/mnt/data/go'):\n    time.sleep(0.02)\n'released'"
  local function started(pool)       -- the code's file, seen from the host (no request)
    return support.sh("find " .. util.quote(pool.state_dir) .. " -name started 2>/dev/null") ~= ""
  end
  local function release(pool, id)
    local up = pool:request{ method = "POST", path = "files/upload", identifier = id,
                             multipart = { { name = "file", filename = "go", data = "" } } }
    assert.are.equal(200, up.status)
  end

  it("answers a new client while a lone client's code runs", function()
    local pool = support.start{ args = { "--ready-sessions", "1" } }
    local lone
    finally(function()
      if lone then lone:stop() end
      pool:stop(); pool:cleanup()
    end)
    lone = hold(pool, { { name = "lone", count = 1, from = { "127.0.0.31" },
                          request = execute_request(pool, "conn-lone", wait_go, pool.token) } })
    assert.is_truthy(util.wait(function() return started(pool) end, 30))
    local res = pool:request{ path = "health", auth = false, timeout = 20 }
    assert.are.equal(200, res.status)
    assert.are.equal(0, lone:count("answer", "lone"))
    release(pool, "conn-lone")
    lone:wait("the lone answer", function(h) return h:count("answer", "lone") == 1 end)
  end)

  it("closes an idle connection at its timeout while a lone client's code runs", function()
    -- the header deadline is far: only libmicrohttpd's idle timeout ends it
    local pool = support.start{ args = { "--ready-sessions", "1", "--idle-timeout", "3",
                                         "--header-timeout", "3600" } }
    local idle, lone
    finally(function()
      for _, h in ipairs{ idle, lone } do if h then h:stop() end end
      pool:stop(); pool:cleanup()
    end)
    idle = hold(pool, { { name = "kept-alive", count = 1, from = { "127.0.0.30" },
                          request = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n" } })
    idle:wait("an answer", function(h) return h:count("answer", "kept-alive") == 1 end)
    lone = hold(pool, { { name = "lone", count = 1, from = { "127.0.0.31" },
                          request = execute_request(pool, "conn-lone", wait_go, pool.token) } })
    idle:wait("the idle connection closed", function(h) return h:count("closed", "kept-alive") == 1 end)
    assert.is_true(started(pool))                -- closed while the code ran, not before
    assert.are.equal(0, lone:count("answer", "lone"))
    release(pool, "conn-lone")
    lone:wait("the lone answer", function(h) return h:count("answer", "lone") == 1 end)
  end)
end)
