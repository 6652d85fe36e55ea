-- Failures a real pool cannot be made to produce on demand, replayed by the
-- Azure stand-in (tests/support/azure_stub.py) for every operation: the
-- documented behaviour is either a retry (counted) or one clear error.
local sessions = require "sessions"
local S = require "support.azure_stub"

local stub
local TOKEN = "static-test-token-0123456789"

setup(function()
  stub = S.start()
  stub:config{ tokens = { TOKEN } }
end)
teardown(function() if stub then stub:stop() end end)

local now = require("sessions.core").monotonic     -- the one clock of every timing

-- The operations: how to call each, which path the stand-in sees, whether it
-- may be retried after the request was sent, and whether its answer is JSON.
local OPS = {
  { name = "execute", version = "2024-02-02-preview", method = "POST", path = "code/execute", safe = false, json = true,
    call = function(s) return s:execute("6 * 7") end, check = function(r) assert.equal(42, r.result) end },
  { name = "upload", version = "2024-02-02-preview", method = "POST", path = "files/upload", safe = true, json = true,
    call = function(s) return s:upload{ name = "u.txt", data = "up" } end, check = function(f) assert.equal(2, f.size) end },
  { name = "files", version = "2024-02-02-preview", method = "GET", path = "files", safe = true, json = true,
    call = function(s) return s:files() end, check = function(l) assert.is_table(l) end },
  { name = "download", version = "2024-02-02-preview", method = "GET", path = "files/content/.+", safe = true,
    call = function(s) return s:download("seed.txt") end, check = function(b) assert.equal("seed", b) end },
  { name = "execute", version = "2025-10-02-preview", method = "POST", path = "executions", safe = false, json = true,
    call = function(s) return s:execute("6 * 7") end, check = function(r) assert.equal(42, r.result) end },
  { name = "upload", version = "2025-10-02-preview", method = "POST", path = "files", safe = true, json = true,
    call = function(s) return s:upload{ name = "u.txt", data = "up" } end, check = function(f) assert.equal(2, f.size) end },
  { name = "files", version = "2025-10-02-preview", method = "GET", path = "files", safe = true, json = true,
    call = function(s) return s:files() end, check = function(l) assert.is_table(l) end },
  { name = "file info", version = "2025-10-02-preview", method = "GET", path = "files/seed.txt", safe = true, json = true,
    call = function(s) return s:file("seed.txt") end, check = function(f) assert.equal(4, f.size) end },
  { name = "download", version = "2025-10-02-preview", method = "GET", path = "files/seed.txt/content", safe = true,
    call = function(s) return s:download("seed.txt") end, check = function(b) assert.equal("seed", b) end },
  { name = "delete file", version = "2025-10-02-preview", method = "DELETE", path = "files/seed.txt", safe = true,
    call = function(s) return s:delete("seed.txt") end, check = function(v) assert.is_true(v) end },
  { name = "session", version = "2025-10-02-preview", method = "GET", path = "session", safe = true, json = true,
    call = function(s) return s:info() end, check = function(i) assert.is_string(i.id) end },
  { name = "list sessions", version = "2025-10-02-preview", method = "GET", path = "listSessions", safe = true, json = true,
    call = function(s) return s:list_sessions() end, check = function(l) assert.is_table(l) end },
  { name = "metadata", version = "2025-10-02-preview", method = "GET", path = "metadata", safe = true, json = true,
    call = function(s) return s:metadata() end, check = function(m) assert.equal("python", m.runtimes[1].name) end },
}

-- A fresh session with seed.txt in place, and the stand-in's log cleared.
local function fresh(op, o)
  stub:reset()
  stub:config{ tokens = { TOKEN } }
  o = o or {}
  local s = sessions.new{ endpoint = stub.url, token = TOKEN, api_version = op.version,
                          retries = o.retries or 3, retry_time = 20, timeout = o.timeout or 20 }
  s:upload{ name = "seed.txt", data = "seed" }
  stub:clear()
  return s
end

local function count(op)
  local n = 0
  for _, r in ipairs(stub:log()) do
    if r.method == op.method and (r.path:match("^" .. op.path .. "$")) then n = n + 1 end
  end
  return n
end

local function fails(op, s)
  local ok, e = pcall(op.call, s)
  assert.is_false(ok, op.name .. " should have failed")
  assert.is_table(e)
  assert.equal(op.name, e.op)
  assert.is_nil(tostring(e):find(TOKEN, 1, true))
  assert.is_nil(tostring(e):find("\n"))
  -- the session identifier is a secret (pool-api.md, 3): in no field, not even a url
  assert.is_nil(tostring(e):find(s.id, 1, true))
  for k, v in pairs(e) do
    assert.is_nil(tostring(v):find(s.id, 1, true), "the session id is in field " .. tostring(k))
  end
  return e
end

for _, op in ipairs(OPS) do
  describe(op.name .. " (" .. op.version .. ")", function()
    it("works against the stand-in", function()
      local s = fresh(op)
      op.check(op.call(s))
      assert.equal(1, count(op))
    end)

    for _, case in ipairs{
      { status = 401, body = "", message = "token was refused" },
      { status = 403, json = { error = { code = "Forbidden", message = "The principal lacks the role." } },
        code = "Forbidden", message = "lacks the role" },
      { status = 404, json = { error = { code = "SessionNotFound", message = "Session was not found." } },
        code = "SessionNotFound", message = "not found" },
      { status = 413, json = { error = { code = "PayloadTooLarge", message = "The file exceeds 128 MB." } },
        code = "PayloadTooLarge", message = "exceeds 128 MB" },
      { status = 500, json = { error = { code = "InternalServerError", message = "Something broke." } },
        code = "InternalServerError", message = "Something broke" },
    } do
      it(("gives one clear error for HTTP %d, without retrying"):format(case.status), function()
        local s = fresh(op)
        stub:script{ method = op.method, path = op.path,
                     responses = { { status = case.status, body = case.body, json = case.json,
                                     headers = case.code and { ["x-ms-error-code"] = case.code } or nil } } }
        local e = fails(op, s)
        assert.equal("http", e.kind)
        assert.equal(case.status, e.status)
        assert.equal(case.code, e.code)
        assert.matches(case.message, tostring(e))
        assert.is_string(e.request_id)
        assert.equal(0, e.retries)
        assert.equal(1, count(op))
      end)
    end

    it("waits as Retry-After says on 429, then succeeds", function()
      local s = fresh(op)
      stub:script{ method = op.method, path = op.path,
                   responses = { { status = 429, headers = { ["Retry-After"] = "1" },
                                   json = { error = { code = "TooManyRequests", message = "slow down" } } } } }
      local t0 = now()
      op.check(op.call(s))
      assert.is_true(now() - t0 >= 0.9, "Retry-After was not honoured")
      assert.equal(2, count(op))
    end)

    it("gives up after the retry budget on repeated 429", function()
      local s = fresh(op, { retries = 3 })
      local r = { status = 429, headers = { ["Retry-After"] = "0" } }
      stub:script{ method = op.method, path = op.path, responses = { r, r, r, r, r } }
      local e = fails(op, s)
      assert.equal(429, e.status)
      assert.equal(2, e.retries)
      assert.equal(3, count(op))
      assert.matches("after 2 retries", tostring(e))
    end)

    it("retries a 503 (the pool did not take the request)", function()
      local s = fresh(op)
      stub:script{ method = op.method, path = op.path, responses = { { status = 503 } } }
      op.check(op.call(s))
      assert.equal(2, count(op))
    end)

    it(op.safe and "retries a 502" or "never retries a 502 (the code may have run)", function()
      local s = fresh(op)
      stub:script{ method = op.method, path = op.path, responses = { { status = 502, body = "Bad Gateway",
                                                                       headers = { ["Content-Type"] = "text/plain" } } } }
      if op.safe then
        op.check(op.call(s))
        assert.equal(2, count(op))
      else
        local e = fails(op, s)
        assert.equal(502, e.status)
        assert.matches("Bad Gateway", tostring(e))
        assert.equal(1, count(op))
      end
    end)

    for _, action in ipairs{ "truncate", "reset" } do
      it((op.safe and "retries after a %s" or "reports a %s without sending the code twice"):format(
           action == "reset" and "reset connection" or "truncated body"), function()
        local s = fresh(op)
        stub:script{ method = op.method, path = op.path, responses = { { action = action } } }
        -- a warm keep-alive connection, as in any real session: libcurl
        -- treats a reused connection that dies unanswered as stale
        if not op.safe then s:files() end
        if op.safe then
          op.check(op.call(s))
          assert.equal(2, count(op))
        else
          local e = fails(op, s)
          assert.equal("transport", e.kind)
          if action == "reset" then assert.matches("may or may not have run", e.message) end
          assert.equal(1, count(op))
        end
      end)
    end

    it((op.safe and "retries a server slower than the timeout" or
        "reports a server slower than the timeout without sending the code twice"), function()
      local s = fresh(op, { timeout = 1 })
      -- libcurl judges a stalled upload by its speed over the last five seconds,
      -- so the stand-in must stay silent longer after an upload
      local delay = op.name == "upload" and 8 or 2.5
      stub:script{ method = op.method, path = op.path, responses = { { action = "slow", delay = delay } } }
      if op.safe then
        op.check(op.call(s))
        assert.equal(2, count(op))
      else
        local e = fails(op, s)
        assert.equal("transport", e.kind)
        assert.matches("[Tt]ime", e.message)
        assert.equal(1, count(op))
      end
    end)

    if op.json then
      it("reports invalid JSON as a protocol error", function()
        local s = fresh(op)
        stub:script{ method = op.method, path = op.path, responses = { { action = "invalid_json" } } }
        local e = fails(op, s)
        assert.equal("protocol", e.kind)
        assert.equal(200, e.status)
        assert.matches("invalid JSON", tostring(e))
        assert.equal(1, count(op))
      end)

      it("reports a well-formed answer of the wrong shape", function()
        local s = fresh(op)
        stub:script{ method = op.method, path = op.path, responses = { { status = 200, json = { unexpected = true } } } }
        local ok, e = pcall(op.call, s)
        if op.name == "upload" or op.name == "metadata" or op.name == "session" then
          return    -- these tolerate a sparse answer
        end
        assert.is_false(ok)
        assert.equal("protocol", e.kind)
      end)
    end
  end)
end

describe("the stand-in's second generation", function()
  it("pages through listSessions", function()
    stub:reset()
    stub:config{ tokens = { TOKEN } }
    local made = {}
    for i = 1, 5 do
      local s = sessions.new{ endpoint = stub.url, token = TOKEN, api_version = "2025-02-02-preview" }
      s:execute("1")
      made[s.id] = true
    end
    local s = sessions.new{ endpoint = stub.url, token = TOKEN, api_version = "2025-02-02-preview" }
    local all = s:list_sessions()
    assert.equal(5, #all)
    for _, x in ipairs(all) do assert.is_true(made[x.id]) end
    assert.equal(3, stub:count("GET", "^listSessions$"))   -- pages of two
  end)

  it("lists sessions and reads metadata without a session of one's own", function()
    stub:reset()
    stub:config{ tokens = { TOKEN } }
    local s = sessions.new{ endpoint = stub.url, token = TOKEN, api_version = "2025-10-02-preview" }
    s:execute("1")
    local list = sessions.list_sessions{ endpoint = stub.url, token = TOKEN }
    assert.equal(1, #list)
    assert.equal(s.id, list[1].id)
    local md = sessions.metadata{ endpoint = stub.url, token = TOKEN }
    assert.equal("python3", md.kernel.name)
    assert.equal("numpy", md.packages[1].name)
    assert.equal(0, stub:count("DELETE", "^session$"))   -- nothing of theirs to delete
  end)

  it("follows a file list's nextLink on the same host, and refuses another host", function()
    stub:reset()
    stub:config{ tokens = { TOKEN } }
    local s = sessions.new{ endpoint = stub.url, token = TOKEN, api_version = "2025-10-02-preview", id = "paged-1" }
    s:upload{ name = "second.txt", data = "22" }
    local first = { name = "first.txt", type = "File", sizeInBytes = 1, lastModifiedAt = "2025-01-01T00:00:00Z" }
    stub:script{ method = "GET", path = "files", responses = { { json = { value = { first },
      nextLink = "/files?identifier=paged-1&api-version=2025-10-02-preview&page=2" } } } }
    local list = s:files()
    assert.equal(2, #list)
    assert.equal("first.txt", list[1].name)
    assert.equal("second.txt", list[2].name)
    stub:script{ method = "GET", path = "files", responses = { { json = { value = { first },
      nextLink = "https://elsewhere.invalid/files?page=2" } } } }
    local ok, e = pcall(s.files, s)
    assert.is_false(ok)
    assert.equal("protocol", e.kind)
    assert.matches("another host", tostring(e))
  end)

  it("accepts the pool path prefix of Azure endpoints", function()
    stub:reset()
    stub:config{ tokens = { TOKEN } }
    local s = sessions.new{ endpoint = stub.url .. "/subscriptions/s/resourceGroups/g/sessionPools/p/",
                            token = TOKEN, api_version = "2025-10-02-preview" }
    assert.equal(42, s:execute("6 * 7").result)
    assert.equal(1, stub:count("POST", "^executions$"))
  end)

  it("sends what the API documents: identifier, api-version, bodies, operation-id", function()
    stub:reset()
    stub:config{ tokens = { TOKEN } }
    local s = sessions.new{ endpoint = stub.url, token = TOKEN, api_version = "2025-10-02-preview", id = "my-id#1&x" }
    s:execute("import time; time.sleep(0.3)", { async = true, operation_id = "op-1" })
    local first = stub:log()[1]
    assert.equal("executions", first.path)
    assert.equal("my-id#1&x", first.query.identifier)
    assert.equal("2025-10-02-preview", first.query["api-version"])
    assert.equal("Bearer " .. TOKEN, first.auth)
    assert.equal("op-1", first.headers["operation-id"])
    assert.matches("^sesh/", first.headers["user-agent"])
    assert.equal("executions/op-1", stub:log()[2].path)
  end)
end)
