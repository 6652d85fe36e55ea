-- The Lua MCP client (lua/mcp.lua): against sesh-pool's MCP server over stdio
-- and HTTP, and against a small server written with the official SDK
-- (tests/mcp/sdk_server.cjs) over stdio and streamable HTTP (SSE answers and
-- JSON answers).

local mcp = require "mcp"
local errors = require "sessions.errors"
local mcpt = require "support.mcp"
local poolmod = require "support.pool"
local util = require "support.util"

local SDK_TOOLS = { "echo", "add", "pixel", "fail", "sleep", "ping_back", "headers", "forget" }

local function names(tools)
  local list = {}
  for i, t in ipairs(tools) do list[i] = t.name end
  return list
end

local function raised(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return e
end

-- What a client does with sesh-pool's tools, over either transport.
local function pool_flow(c)
  assert.equal("sesh-pool", c.server_info.name)
  assert.equal("2025-06-18", c.protocol_version)
  assert.equal(7, #c:tools())
  local env = c:call("launchShell").structuredContent.environmentId
  assert.is_string(env)
  local r = c:call("runPythonCodeInRemoteEnvironment", { environmentId = env, pythonCode = "n = 6 * 7\nn" })
  assert.is_false(r.isError)
  assert.equal(42, r.structuredContent.result)
  assert.equal("integer", math.type(r.structuredContent.result))   -- sessions.json keeps integers
  assert.matches('"result":42', r.text)

  r = c:call("uploadFile", { environmentId = env, path = "notes/a.txt", content = "héllo\n" })
  assert.equal(7, r.structuredContent.sizeInBytes)
  r = c:call("downloadFile", { environmentId = env, path = "notes/a.txt" })
  assert.equal("héllo\n", r.structuredContent.content)

  r = c:call("runPythonCodeInRemoteEnvironment", { environmentId = env,
    pythonCode = "import matplotlib.pyplot as plt\nplt.plot([n, 1])\nplt.show()" })
  assert.equal("image", r.content[2].type)
  assert.equal("image/png", r.content[2].mimeType)
  assert.equal("\137PNG", require("sessions.core").b64decode(r.content[2].data):sub(1, 4))

  r = c:call("runPythonCodeInRemoteEnvironment", { environmentId = env, pythonCode = "raise ValueError('no')" })
  assert.is_true(r.isError)
  assert.matches("ValueError: no", r.structuredContent.stderr)

  local e = raised(c.call, c, "noSuchTool", {})
  assert.is_true(errors.is(e, "mcp"))
  assert.equal(-32602, e.code)
  assert.matches("noSuchTool", tostring(e))
  return env
end

describe("mcp.spawn with sesh-pool --mcp-stdio", function()
  it("runs a whole flow and the server exits 0 at close", function()
    local dir = poolmod.tmpdir()
    local c = mcp.spawn{ command = poolmod.binary(), args = mcpt.stdio_args(dir), stderr = dir .. "/log" }
    pool_flow(c)
    c:close()
    assert.equal("exit", c.transport.exit_how)
    assert.equal(0, c.transport.exit_code)
    assert.matches("ended, 1 environment deleted", util.read(dir .. "/log"))
    assert.is_nil(util.read(dir .. "/log"):match("stopping on a signal"))
    os.execute("rm -rf " .. util.quote(dir))
  end)

  it("answers pings and cancels a call the client gave up on", function()
    local dir = poolmod.tmpdir()
    -- executions may run 120 s: only the cancellation can free the session sooner
    local c <close> = mcp.spawn{ command = poolmod.binary(), stderr = dir .. "/log",
                                 args = mcpt.stdio_args(dir, { "--timeout", "120" }) }
    assert.same({}, c:request("ping"))
    local env = c:call("launchShell").structuredContent.environmentId
    c:call("runPythonCodeInRemoteEnvironment", { environmentId = env, pythonCode = "x = 1" })
    local e = raised(c.call, c, "runPythonCodeInRemoteEnvironment",
                     { environmentId = env, pythonCode = "import time\nwhile True: time.sleep(0.05)" },
                     { timeout = 1 })
    assert.equal("timeout", e.kind)
    -- the server stopped the cell: the session is free again, its state kept
    local r = c:call("runPythonCodeInRemoteEnvironment", { environmentId = env, pythonCode = "x + 1" },
                     { timeout = 60 })
    assert.equal(2, r.structuredContent.result)
    assert.is_truthy(mcpt.wait_for(function()
      return util.read(dir .. "/log"):match("runPythonCodeInRemoteEnvironment %d+ms session %x+[ %w]* %(cancelled%)")
    end))
    c:close()
    os.execute("rm -rf " .. util.quote(dir))
  end)

  it("runs shell commands in a Shell pool, and says that it runs no Python", function()
    local dir = poolmod.tmpdir()
    local c <close> = mcp.spawn{ command = poolmod.binary(), stderr = dir .. "/log",
                                 args = mcpt.stdio_args(dir, { "--container-type", "Shell" }) }
    local env = c:call("launchShell").structuredContent.environmentId
    local r = c:call("runShellCommandInRemoteEnvironment", { environmentId = env,
                                                            shellCommand = "cd /tmp; echo $0 > /mnt/data/who" })
    assert.is_false(r.isError)
    r = c:call("runShellCommandInRemoteEnvironment", { environmentId = env, shellCommand = "pwd; cat /mnt/data/who" })
    assert.equal("/tmp\nbash\n", r.structuredContent.stdout)
    assert.equal(0, r.structuredContent.exitCode)
    local t = c:call("runShellCommandInRemoteEnvironment", { environmentId = env, shellCommand = "exit 9" })
    assert.is_true(t.isError)
    assert.equal(9, t.structuredContent.exitCode)
    local py = c:call("runPythonCodeInRemoteEnvironment", { environmentId = env, pythonCode = "1" })
    assert.is_true(py.isError)
    assert.matches("runs shell commands only", py.text)
    r = c:call("downloadFile", { environmentId = env, path = "who" })
    assert.equal("bash\n", r.structuredContent.content)
    c:close()
    os.execute("rm -rf " .. util.quote(dir))
  end)

  it("says plainly when the command cannot start", function()
    local e = raised(mcp.spawn, { command = "/nonexistent/mcp-server" })
    assert.is_true(errors.is(e, "transport"))
    assert.equal("ENOENT", e.code)
  end)
end)

describe("mcp.connect with sesh-pool's /mcp", function()
  local pool
  setup(function() pool = mcpt.http_pool() end)
  teardown(function() if pool then pool:stop(); pool:cleanup() end end)

  it("runs a whole flow; closing ends the MCP session and its environment", function()
    local c = mcp.connect{ url = pool.mcp_url, headers = { ["x-ms-apikey"] = pool.mcp_key } }
    assert.matches("^%x+$", c.session_id)
    local env = pool_flow(c)
    c:close()
    local res = pool:request{ path = "session", identifier = env, api_version = "2025-02-02-preview" }
    assert.equal(404, res.status)
  end)

  it("raises an http error with the status for a wrong key", function()
    local e = raised(mcp.connect, { url = pool.mcp_url, headers = { ["x-ms-apikey"] = "wrong" } })
    assert.is_true(errors.is(e, "http"))
    assert.equal(401, e.status)
    assert.matches("MCP key", e.message)
  end)

  it("keeps the REST API and its token apart from MCP and its key", function()
    local rest = pool:execute("6 * 7")
    assert.equal(200, rest.status)
    assert.equal(401, pool:request{ path = "code/execute", method = "POST", auth = false,
                                    headers = { Authorization = "Bearer " .. pool.mcp_key },
                                    json = { properties = { code = "1" } } }.status)
    assert.equal(401, mcpt.post(pool, { jsonrpc = "2.0", id = 1, method = "ping" },
                                { ["x-ms-apikey"] = false, Authorization = "Bearer " .. pool.token }).status)
  end)

  it("refuses a foreign Origin, answers notifications 202 and GET 405", function()
    local ping = { jsonrpc = "2.0", id = 1, method = "ping" }
    assert.equal(403, mcpt.post(pool, ping, { Origin = "https://evil.example" }).status)
    assert.equal(200, mcpt.post(pool, ping, { Origin = "http://localhost:5173" }).status)
    local note = mcpt.post(pool, { jsonrpc = "2.0", method = "notifications/initialized" })
    assert.equal(202, note.status)
    assert.equal("", note.body or "")
    local get = pool:request{ url = pool.mcp_url, auth = false, headers = { ["x-ms-apikey"] = pool.mcp_key,
                                                                             Accept = "text/event-stream" } }
    assert.equal(405, get.status)
  end)

  it("asks no OAuth of a client without the key: 401 without WWW-Authenticate (the REST API's has it)", function()
    local r = mcpt.post(pool, { jsonrpc = "2.0", id = 1, method = "ping" }, { ["x-ms-apikey"] = "wrong" })
    assert.equal(401, r.status)
    assert.is_nil(r.headers["www-authenticate"])
    assert.equal(-32000, require("cjson").decode(r.body).error.code)
    assert.equal("Bearer", pool:request{ path = "files", auth = false }.headers["www-authenticate"])
  end)

  it("refuses a message over 8 MiB with 413 and a JSON-RPC error, announced or chunked", function()
    local big = ('"%s"'):format(("x"):rep(8 * 1024 * 1024))
    local r = mcpt.post(pool, big)
    assert.equal(413, r.status)
    assert.matches("Payload Too Large", require("cjson").decode(r.body).error.message)
    -- no Content-Length: the pool reads 8 MiB, then refuses and drops the rest
    local host, port = pool.endpoint:match("http://([^:]+):(%d+)")
    local chunk = ("y"):rep(1024 * 1024)
    local parts = {}
    for i = 1, 9 do parts[i] = ("%x\r\n%s\r\n"):format(#chunk, chunk) end
    local request = util.write(poolmod.tmpdir() .. "/chunked.http", ("POST /mcp HTTP/1.1\r\nHost: x\r\n" ..
      "x-ms-apikey: %s\r\nContent-Type: application/json\r\nAccept: application/json\r\n" ..
      "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n%s0\r\n\r\n"):format(pool.mcp_key, table.concat(parts)))
    local p = io.popen(("/usr/bin/python3 tests/support/raw_http.py %s %s %s"):format(host, port, util.quote(request)))
    local answer = p:read("a")
    p:close()
    assert.matches("^HTTP/1%.1 413 ", answer)
    assert.matches("Payload Too Large: a message is at most 8388608 bytes", answer, 1, true)
  end)
end)

describe("mcp.spawn with a server written with the SDK", function()
  local c
  setup(function()
    mcpt.npm()
    c = mcp.spawn{ command = "node", args = { "tests/mcp/sdk_server.cjs", "stdio" },
                   env = { SESH_NPM = mcpt.NPM } }
  end)
  teardown(function() if c then c:close() end end)

  it("lists its tools and calls them", function()
    assert.equal("sdk-test-server", c.server_info.name)
    assert.same(SDK_TOOLS, names(c:tools()))
    local r = c:call("add", { a = 2, b = 40 })
    assert.same({ sum = 42 }, r.structuredContent)
    assert.equal('{"sum":42}', r.text)
    r = c:call("pixel")
    assert.equal("image", r.content[2].type)
    assert.equal("a pixel", r.text)
  end)

  it("returns a failed tool as a result with isError", function()
    local r = c:call("fail")
    assert.is_true(r.isError)
    assert.equal("it failed on purpose", r.text)
  end)

  it("answers the server's own ping while a call runs", function()
    assert.equal("the client answered my ping", c:call("ping_back").text)
  end)

  it("gives up on a call after its timeout and goes on with the next", function()
    local e = raised(c.call, c, "sleep", { ms = 2500 }, { timeout = 1 })
    assert.equal("timeout", e.kind)
    assert.equal("echo: still here", c:call("echo", { text = "still here" }).text)
  end)
end)

describe("mcp.connect with a server written with the SDK", function()
  for _, mode in ipairs{ "http", "http-json" } do
    describe(mode == "http" and "(answers as SSE streams)" or "(answers as JSON)", function()
      local srv
      setup(function() srv = mcpt.sdk_server(mode) end)
      teardown(function() if srv then srv:stop() end end)

      it("calls tools, sending the session, version and caller's headers", function()
        local c <close> = mcp.connect{ url = srv.url, headers = { ["X-Caller"] = "spec" } }
        assert.same(SDK_TOOLS, names(c:tools()))
        assert.same({ sum = 5 }, c:call("add", { a = 2, b = 3 }).structuredContent)
        local seen = require("sessions.json").decode(c:call("headers").text)
        assert.equal(c.session_id, seen["mcp-session-id"])
        assert.equal("2025-06-18", seen["mcp-protocol-version"])
        assert.equal("spec", seen["x-caller"])
        assert.matches("text/event%-stream", seen.accept)
        assert.matches("application/json", seen.accept)
      end)

      it("starts a new session when the server forgot its own (404)", function()
        local c <close> = mcp.connect{ url = srv.url }
        local first = c.transport.session_id
        assert.equal("forgetting", c:call("forget").text)
        assert.equal("echo: again", c:call("echo", { text = "again" }).text)
        assert.is_string(c.transport.session_id)
        assert.are_not.equal(first, c.transport.session_id)
      end)
    end)
  end

  it("raises a transport error when nothing listens", function()
    local e = raised(mcp.connect, { url = "http://127.0.0.1:9/mcp", connect_timeout = 2 })
    assert.equal("transport", e.kind)
  end)
end)
