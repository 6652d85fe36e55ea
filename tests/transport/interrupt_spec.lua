-- Ctrl-C: SIGINT during a transfer aborts it and raises { kind = "interrupted" }.
local http = require "sessions.http"
local support = require "support.stub_http"

local SESH = (os.getenv("SESH_BUILD") or "build") .. "/bin/sesh"

local uptime = require("sessions.core").monotonic     -- the one clock of every timing

-- SIGINT to this process after `delay` seconds, from a background shell.
local function sigint_after(delay)
  os.execute(string.format("(sleep %s; kill -INT %d) >/dev/null 2>&1 &", delay, support.pid()))
end

describe("Ctrl-C during a transfer", function()
  local stub, c
  setup(function()
    stub = support.start()
    c = http.client{ timeout = 30 }
  end)
  teardown(function()
    c:close()
    stub:stop()
  end)

  it("aborts a blocking request promptly with an interrupted error", function()
    sigint_after(0.5)
    local t0 = uptime()
    local ok, err = pcall(c.request, c, { url = stub.url .. "/slow?s=10" })
    assert.is_false(ok)
    assert.are.equal("interrupted", err.kind)
    assert.are.equal("interrupted by Ctrl-C", tostring(err))
    assert.is_true(uptime() - t0 < 5, "took " .. (uptime() - t0))
  end)

  it("leaves the client usable afterwards", function()
    assert.are.equal(200, c:request{ url = stub.url .. "/hello" }.status)
  end)

  it("interrupts the sleep between retries", function()
    sigint_after(0.5)
    local t0 = uptime()
    local ok, err = pcall(c.request, c, { url = stub.url .. "/throttle?key=i1&n=5&after=20",
                                          retry = { max = 3, total = 60, statuses = { 429 } } })
    assert.is_false(ok)
    assert.are.equal("interrupted", err.kind)
    assert.is_true(uptime() - t0 < 5, "took " .. (uptime() - t0))
  end)

  it("aborts every transfer of http.run and raises interrupted", function()
    sigint_after(0.5)
    local t0 = uptime()
    local ok, err = pcall(http.run, {
      function() return c:request{ url = stub.url .. "/slow?s=10" } end,
      function() return c:request{ url = stub.url .. "/slow?s=10" } end,
    })
    assert.is_false(ok)
    assert.are.equal("interrupted", err.kind)
    assert.is_true(uptime() - t0 < 5, "took " .. (uptime() - t0))
  end)

  it("interrupts core.sleep, alone and inside http.run", function()
    local core = require "sessions.core"
    sigint_after(0.5)
    local t0 = uptime()
    local ok, err = pcall(core.sleep, 20)
    assert.is_false(ok)
    assert.are.equal("interrupted", err.kind)
    assert.is_true(uptime() - t0 < 5, "took " .. (uptime() - t0))
    sigint_after(0.5)
    t0 = uptime()
    ok, err = pcall(http.run, { function() core.sleep(20) end,
                                function() return c:request{ url = stub.url .. "/slow?s=10" } end })
    assert.is_false(ok)
    assert.are.equal("interrupted", err.kind)
    assert.is_true(uptime() - t0 < 5, "took " .. (uptime() - t0))
  end)

  it("removes a partial download when interrupted", function()
    local path = support.tmpname("int.bin")
    sigint_after(0.5)
    local ok, err = pcall(c.request, c, { url = stub.url .. "/drip?bytes=100&s=10", output_file = path })
    assert.is_false(ok)
    assert.are.equal("interrupted", err.kind)
    assert.is_nil(io.open(path))
    local dir, base = path:match("^(.*)/([^/]*)$")
    local ls = io.popen("ls -a '" .. dir .. "'"):read("a")
    assert.is_nil(ls:find("." .. base .. ".sesh-", 1, true), "temp file left")
  end)

  it("restores the previous SIGINT handling after the transfer", function()
    -- a fresh host: one request, then a long Lua loop; Ctrl-C must stop the process
    local script = string.format([[
      local http = require "sessions.http"
      http.client():request{ url = %q }
      io.stdout:write("ready\n"); io.stdout:flush()
      local t = os.time() + 10
      while os.time() < t do end
      print("survived")
    ]], stub.url .. "/hello")
    local path = support.tmpname("int.lua")
    local f = assert(io.open(path, "w")); f:write(script); f:close()
    local t0 = uptime()
    local cmd = string.format("%s %s & pid=$!; sleep 1; kill -INT $pid; wait $pid; echo rc=$?",
                              SESH, path)
    local out = io.popen("sh -c '" .. cmd .. "' 2>&1"):read("a")
    os.remove(path)
    assert.matches("ready", out)
    assert.is_nil(out:find("survived", 1, true), out)
    assert.is_nil(out:find("rc=0", 1, true), out)
    assert.is_true(uptime() - t0 < 8)
  end)
end)
