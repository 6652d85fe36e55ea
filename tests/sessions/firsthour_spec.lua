-- What a new user meets in the first hour (issue 13): the default api-version
-- does every documented call; a pool started by hand is reached through the
-- environment; the auto-started pool takes options; mistakes get usage
-- errors and hints; SESH_LOG=debug says what happens. Real pools, real
-- sesh processes where the environment matters.
local sessions = require "sessions"
local P = require "support.pool"
local util = require "support.util"

local q = util.quote
local pool
local started = {}        -- pids of local pools these specs caused

setup(function() pool = P.start{} end)
teardown(function()
  if pool then pool:stop(); pool:cleanup() end
  for _, pid in ipairs(started) do os.execute("kill " .. pid .. " 2>/dev/null") end
end)

-- A fresh XDG_RUNTIME_DIR for a local pool of its own.
local function fresh_run()
  local run = P.tmpdir()
  os.execute("chmod 700 " .. q(run))
  return run
end

-- Runs a Lua snippet in a fresh sesh: env is a list of NAME=value words;
-- returns stdout, stderr, ok.
local function sesh(code, env, run)
  run = run or fresh_run()
  local file = util.write(run .. "/snippet-" .. math.random(1e9) .. ".lua", code)
  local out, err = run .. "/out-" .. math.random(1e9), run .. "/err-" .. math.random(1e9)
  local ok = os.execute(("env -u POOL_MANAGEMENT_ENDPOINT XDG_RUNTIME_DIR=%s SESH_IMDS_ENDPOINT=off " ..
                         "SESH_AZ=/nonexistent/az %s %s %s >%s 2>%s"):format(
    q(run), table.concat(env or {}, " "), q(util.SESH), q(file), q(out), q(err)))
  local pid = tonumber(util.read(run .. "/sesh/pool.pid") or "")
  if pid then started[#started + 1] = pid end
  return util.read(out) or "", util.read(err) or "", ok
end

describe("the default api-version", function()
  it("is the newest, and every documented call works on it", function()
    assert.equal(sessions.LATEST_API_VERSION, sessions.DEFAULT_API_VERSION)
    local s <close> = pool:session{}
    assert.equal(sessions.LATEST_API_VERSION, s.api_version)
    assert.equal(42, s:execute("6 * 7").result)
    assert.equal(-1530, (s:run("-1530")))
    assert.matches('"result": 3', s:invoke("1 + 2"))
    s:upload{ name = "sub/deeper/x.txt", data = "in a folder" }
    s:upload{ name = "top.txt", data = "at the top" }
    local names = {}
    for _, f in ipairs(s:files()) do names[f.path] = f.type end
    assert.same({ sub = "directory", ["top.txt"] = "file" }, names)
    names = {}
    for _, f in ipairs(s:files{ path = "sub/deeper" }) do names[f.path] = f.size end
    assert.same({ ["sub/deeper/x.txt"] = 11 }, names)
    names = {}
    for _, f in ipairs(s:files{ recursive = true }) do names[f.path] = f.type end
    assert.same({ sub = "directory", ["sub/deeper"] = "directory", ["sub/deeper/x.txt"] = "file",
                  ["top.txt"] = "file" }, names)
    assert.equal(11, s:file("sub/deeper/x.txt").size)
    assert.equal("in a folder", s:download("sub/deeper/x.txt"))
    assert.is_true(s:delete("top.txt"))
    assert.equal(s.id, s:info().id)
    local id = s:execute("1", { async = true }).id
    assert.equal("Success", s:get_execution(id).status)
    local found = false
    for _, x in ipairs(s:list_sessions()) do found = found or x.id == s.id end
    assert.is_true(found)
    assert.is_table(s:metadata().packages)
    assert.is_true(s:stop())
    s:restart()
    assert.equal("Failure", s:execute("x").status)
  end)
end)

describe("a pool started by hand", function()
  local SNIPPET = [[
local s <close> = require("sessions").new{}
print(s.endpoint, s:execute("6 * 7").result)
]]

  it("is used through POOL_MANAGEMENT_ENDPOINT with SESH_TOKEN_FILE or SESH_TOKEN", function()
    local out, err = sesh(SNIPPET, { "POOL_MANAGEMENT_ENDPOINT=" .. q(pool.endpoint),
                                     "SESH_TOKEN_FILE=" .. q(pool.token_file) })
    assert.equal(pool.endpoint .. "\t42\n", out, err)
    out, err = sesh(SNIPPET, { "POOL_MANAGEMENT_ENDPOINT=" .. q(pool.endpoint),
                               "SESH_TOKEN=" .. q(pool.token) })
    assert.equal(pool.endpoint .. "\t42\n", out, err)
  end)

  it("takes the token option before the environment's", function()
    local out = sesh(([[
      local s = require("sessions").new{ endpoint = %q, token = "wrong", retries = 1 }
      print(pcall(s.execute, s, "1"))
    ]]):format(pool.endpoint), { "SESH_TOKEN=" .. q(pool.token) })
    assert.matches("^false\tsessions: execute failed %(HTTP 401", out)
  end)

  it("says, when sign-in fails for it, that it wants a token and how to pass it", function()
    local out, err, ok = sesh(SNIPPET, { "POOL_MANAGEMENT_ENDPOINT=" .. q(pool.endpoint) })
    assert.is_falsy(ok)
    assert.equal("", out)
    assert.matches("sessions: sign in failed: no Azure credential worked", err, 1, true)
    assert.matches("(a pool on this machine wants the token it was started with: token_file = " ..
                   "PATH or token = ... in sessions.new, or SESH_TOKEN_FILE=PATH (or SESH_TOKEN) " ..
                   "in the environment", err, 1, true)
  end)

  it("says the same when it refuses the token", function()
    local s = pool:session{ token = "not-the-token", retries = 1 }
    local ok, e = pcall(s.execute, s, "1")
    assert.is_false(ok)
    assert.equal(401, e.status)
    assert.matches("SESH_TOKEN_FILE=PATH", tostring(e), 1, true)
    s:close()
  end)
end)

describe("the auto-started pool", function()
  it("takes options from SESH_POOL_ARGS, and a 413 says where its limit is set", function()
    local run = fresh_run()
    local out, err, ok = sesh([[
      local s <close> = require("sessions").new{}
      print(s:upload{ name = "small.bin", data = ("x"):rep(500) }.size)
      local ok, e = pcall(s.upload, s, { name = "big.bin", data = ("x"):rep(5000) })
      print(ok, e.status, e.hint)
    ]], { "SESH_POOL_ARGS=" .. q("--max-upload 2000 --ready-sessions 0") }, run)
    assert.is_true(ok, err)
    assert.equal("500\nfalse\t413\tthe local pool takes its options from SESH_POOL_ARGS, " ..
                 "e.g. SESH_POOL_ARGS='--max-upload 1073741824 --max-disk 4294967296'; " ..
                 "a running pool keeps its own until it exits\n", out)
    -- the running pool keeps its options; asked for others, the module says so
    out, err = sesh([[print(require("sessions").new{}:execute("1").result)]],
                    { "SESH_POOL_ARGS=--max-upload=9999" }, run)
    assert.equal("1\n", out)
    assert.matches("the local pool was started with other options than SESH_POOL_ARGS " ..
                   "(--max-upload 2000 --ready-sessions 0)", err, 1, true)
  end)

  it("refuses SESH_POOL_ARGS that would cut the module off from it", function()
    local _, err, ok = sesh([[require("sessions").new{}]], { "SESH_POOL_ARGS='--socket /tmp/x'" })
    assert.is_falsy(ok)
    assert.matches("SESH_POOL_ARGS may not hold --socket: the module sets it for the pool it starts",
                   err, 1, true)
  end)
end)

describe("mistakes", function()
  it("a credential or token function without an endpoint is a usage error", function()
    for _, token in ipairs{ sessions.credential{ sources = { "azure_cli" } }, function() return "t" end } do
      local ok, e = pcall(sessions.new, { token = token })
      assert.is_false(ok)
      assert.equal("usage", e.kind)
      assert.matches("needs an endpoint %(endpoint = %.%.%. or POOL_MANAGEMENT_ENDPOINT%): " ..
                     "the local pool takes the token in its own folder", e.message)
    end
  end)

  it("closing a session the pool never saw sends nothing and does not fail", function()
    -- a port nobody listens on: the execute fails to connect, the close has nothing to delete
    local out, err, ok = sesh(([[
      do
        local s <close> = require("sessions").new{ endpoint = "http://127.0.0.1:1", token = "t",
                                                   retries = 1 }
        local ok, e = pcall(s.execute, s, "1")
        print(ok, e.kind, e.code)
      end
      print("block left")
    ]]))
    assert.is_true(ok, err)
    assert.equal("false\ttransport\t7\nblock left\n", out)
    -- one the pool saw is deleted by its close, as before
    local s = pool:session{}
    s:execute("1")
    s:close()
    local res = pool:request{ path = "session", identifier = s.id, api_version = "2025-10-02-preview" }
    assert.equal(404, res.status)
  end)

  it("a missing local file to upload is a file error, a missing local folder to download to is named", function()
    local s <close> = pool:session{}
    local ok, e = pcall(s.upload, s, { file = "/nonexistent/in.csv" })
    assert.is_false(ok)
    assert.equal("file", e.kind)
    assert.matches("cannot read /nonexistent/in.csv: No such file or directory", e.message, 1, true)
    s:upload{ name = "here.txt", data = "x" }
    ok, e = pcall(s.download, s, "here.txt", pool.dir .. "/no/such/folder/here.txt")
    assert.is_false(ok)
    assert.equal("file", e.kind)
    assert.matches("cannot write " .. pool.dir .. "/no/such/folder/here.txt: its folder does not exist",
                   e.message, 1, true)
    assert.is_nil(e.message:find("output_file", 1, true))
  end)
end)

describe("SESH_LOG=debug", function()
  it("logs the pool's start, each request and sign-in steps, and never a token", function()
    local run = fresh_run()
    local _, err, ok = sesh([[
      local s <close> = require("sessions").new{}
      s:execute("6 * 7")
      s:upload{ name = "a.txt", data = "a" }
    ]], { "SESH_LOG=debug" }, run)
    assert.is_true(ok, err)
    assert.matches("sesh: info: sessions: starting the local pool: %S+sesh%-pool %-%-socket " ..
                   ".- %-%-daemon\n", err)
    assert.matches("sesh: debug: sessions: session %x+… on the local pool", err)
    assert.matches("sesh: debug: sessions: POST executions %-> 200 in [%d.]+ ms\n", err)
    assert.matches("sesh: debug: sessions: POST files %-> 200 in [%d.]+ ms\n", err)
    assert.matches("sesh: debug: sessions: DELETE session %-> 204 in [%d.]+ ms\n", err)
    local token = util.read(run .. "/sesh/token"):gsub("%s+$", "")
    assert.is_nil(err:find(token, 1, true))
    -- sign-in: each source tried, and what it said
    _, err = sesh(([[
      local s = require("sessions").new{ endpoint = %q }
      pcall(s.execute, s, "1")
    ]]):format(pool.endpoint), { "SESH_LOG=debug" })
    assert.matches("sesh: debug: sessions: sign in: trying service principal\n", err, 1, true)
    assert.matches("sesh: debug: sessions: sign in: Azure CLI: '/nonexistent/az' not found", err, 1, true)
  end)

  it("says nothing at the default level", function()
    local _, err, ok = sesh([[require("sessions").new{ endpoint = "http://127.0.0.1:9", token = "t" }]])
    assert.is_true(ok, err)
    assert.equal("", err)
  end)
end)
