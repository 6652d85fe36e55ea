-- sesh-pool's MCP server, with the official MCP TypeScript SDK as the client
-- (tests/mcp/sdk_client.cjs), over stdio and over streamable HTTP: the SDK
-- checks the protocol and every structuredContent against its tool's
-- outputSchema; these specs check what came back.

local mcpt = require "support.mcp"
local poolmod = require "support.pool"
local util = require "support.util"

local CLIENT = "tests/mcp/sdk_client.cjs"
local TOOLS = { "launchShell", "runPythonCodeInRemoteEnvironment", "runShellCommandInRemoteEnvironment",
                "uploadFile", "downloadFile", "listFiles", "closeEnvironment" }
local PNG = "89504e470d0a1a0a"

local function stdio_env(dir)
  local argv = { poolmod.binary() }
  for _, a in ipairs(mcpt.stdio_args(dir)) do argv[#argv + 1] = a end
  return { MCP_TRANSPORT = "stdio", MCP_COMMAND = require("cjson").encode(argv) }
end

-- The checks of one whole flow (tests/mcp/sdk_client.cjs "flow"), for either transport.
local function flow_specs(get)
  it("initializes: sesh-pool, tools capability, instructions", function()
    local f = get()
    assert.equal("sesh-pool", f.server.name)
    assert.is_table(f.capabilities.tools)
    assert.matches("launchShell", f.instructions)
  end)

  it("lists seven tools, each with an input and an output schema", function()
    local f = get()
    local names = {}
    for i, t in ipairs(f.tools) do
      names[i] = t.name
      assert.equal("object", t.input.type)
      assert.equal("object", t.output.type)
      assert.is_string(t.title)
    end
    assert.same(TOOLS, names)
    assert.same({ "environmentId", "pythonCode" }, f.tools[2].input.required)
    assert.is_table(f.tools[3].input.properties.shellCommand)
    assert.is_table(f.tools[3].input.properties.execCommandAndArgs)
    assert.same({ "text", "base64" }, f.tools[4].input.properties.encoding.enum)
  end)

  it("launchShell gives an environmentId, as structured content and as text", function()
    local f = get()
    local id = f.launch.structured.environmentId
    assert.matches("^%x+%-%x+%-4%x+%-%x+%-%x+$", id)
    assert.equal('{"environmentId":"' .. id .. '"}', f.launch.text)
    assert.is_false(f.launch.isError)
  end)

  it("runs Python in the environment and keeps its state between calls", function()
    local f = get()
    assert.same({ status = "Success", stdout = "", stderr = "", result = 42,
                  executionTimeInMilliseconds = f.python.structured.executionTimeInMilliseconds },
                f.python.structured)
    assert.equal(43, f.state.structured.result)
    assert.is_false(f.python.isError)
  end)

  it("runs shell commands in the same environment, on the files Python wrote", function()
    local f = get()
    local s = f.shell
    assert.is_false(s.isError, s.text)
    assert.same({ stdout = "from python\n", stderr = "", exitCode = 0,
                  executionTimeInMilliseconds = s.structured.executionTimeInMilliseconds }, s.structured)
    -- a shell that keeps its state; a failing command is a tool error with its exit code
    assert.is_false(f.shellState.isError)
    local failing = f.shellFailing
    assert.is_true(failing.isError)
    assert.equal(3, failing.structured.exitCode)
    assert.equal("shell\n/tmp\n", failing.structured.stdout)
    assert.matches("^oops\n", failing.structured.stderr)
    -- a program and its arguments, kept exact
    assert.is_false(f.shellArgs.isError)
    assert.equal("[a b][it's][x\ny]", f.shellArgs.structured.stdout)
  end)

  it("uploads text and base64 files that Python then reads", function()
    local f = get()
    assert.equal("data/in.csv", f.upload.structured.path)
    assert.equal(12, f.upload.structured.sizeInBytes)
    assert.equal(4, f.uploadBase64.structured.sizeInBytes)
    assert.equal(6, f.pandas.structured.result)
    assert.equal("[0, 1, 2, 255]", f.readBytes.structured.result)
  end)

  it("downloads text as text and other bytes as base64", function()
    local f = get()
    assert.same({ path = "shared.txt", sizeInBytes = 12, mimeType = "text/plain", encoding = "text",
                  content = "from python\n" }, f.downloadText.structured)
    assert.equal("base64", f.downloadBinary.structured.encoding)
    assert.equal("AAEC/w==", f.downloadBinary.structured.content)
  end)

  it("returns a figure as an MCP image block beside the structured result", function()
    local f = get()
    assert.same({ "text", "image" }, f.plot.blocks)
    assert.equal("image/png", f.plot.images[1].mimeType)
    assert.equal(PNG, f.plot.images[1].signature)
    assert.same({ type = "image", format = "png" }, f.plot.structured.result)
    assert.is_nil(f.plot.text:match("base64_data"))
  end)

  it("downloads a PNG file as an image block", function()
    local f = get()
    assert.same({ "text", "image" }, f.downloadPng.blocks)
    assert.equal(PNG, f.downloadPng.images[1].signature)
    assert.equal(f.downloadPng.structured.sizeInBytes, f.downloadPng.images[1].size)
    assert.equal("image", f.downloadPng.structured.encoding)
    assert.is_nil(f.downloadPng.structured.content)
  end)

  it("answers code that fails with isError and the traceback, and the session goes on", function()
    local f = get()
    assert.is_true(f.failing.isError)
    assert.equal("Failure", f.failing.structured.status)
    assert.matches("ZeroDivisionError", f.failing.structured.stderr)
    assert.matches("ZeroDivisionError", f.failing.text)
    assert.equal(1, f.afterFailure.structured.result)
  end)

  it("lists the environment's files", function()
    local seen = {}
    for _, e in ipairs(get().list.structured.files) do seen[e.path] = e.type end
    assert.same({ ["bytes.bin"] = "file", data = "directory", ["data/in.csv"] = "file",
                  ["figure.png"] = "file", ["shared.txt"] = "file" }, seen)
  end)

  it("answers an unknown tool and bad arguments with JSON-RPC error -32602", function()
    local f = get()
    assert.is_false(f.unknownTool.ok)
    assert.equal(-32602, f.unknownTool.code)
    assert.matches("noSuchTool", f.unknownTool.message)
    assert.equal(-32602, f.badArguments.code)
    assert.matches("pythonCode", f.badArguments.message)
  end)

  it("tells the model about a missing file or environment as tool errors", function()
    local f = get()
    assert.is_true(f.missing.isError)
    assert.matches("nope.txt", f.missing.text)
    assert.is_true(f.unknownEnvironment.isError)
    assert.matches("launchShell", f.unknownEnvironment.text)
  end)

  it("closes an environment: its session is gone", function()
    local f = get()
    assert.is_true(f.close.structured.closed)
    assert.is_true(f.afterClose.isError)
  end)
end

describe("the MCP SDK over stdio (sesh-pool --mcp-stdio)", function()
  local dir, flow
  local function get()
    if not flow then
      dir = poolmod.tmpdir()
      flow = mcpt.node(CLIENT, "flow", stdio_env(dir))
    end
    return flow
  end
  teardown(function() if dir then os.execute("rm -rf " .. util.quote(dir)) end end)

  flow_specs(get)

  it("exits 0 when stdin ends, deleting its environments and its state", function()
    local sdir = poolmod.tmpdir()
    local r, stderr = mcpt.node(CLIENT, "endSession", stdio_env(sdir))
    assert.is_false(r.ran.isError)
    assert.equal(0, r.exit.code)
    assert.equal(require("cjson").null, r.exit.signal)
    -- ended by the end of its input, not by the SIGTERM the SDK sends 2 s later
    assert.matches("mcp session %x+: ended, 1 environment deleted", stderr)
    assert.is_nil(stderr:match("stopping on a signal"))
    assert.equal("", poolmod.sh("ls " .. util.quote(sdir) .. " | grep '^pool-' || true"))
    assert.is_false(poolmod.alive(r.pid))
    assert.same({}, mcpt.processes_naming(sdir))     -- no sandbox left behind
    os.execute("rm -rf " .. util.quote(sdir))
  end)
end)

describe("the MCP SDK over streamable HTTP (sesh-pool --mcp-key-file)", function()
  local pool, flow
  setup(function() pool = mcpt.http_pool() end)
  teardown(function() if pool then pool:stop(); pool:cleanup() end end)

  local function env(extra)
    local e = { MCP_TRANSPORT = "http", MCP_URL = pool.mcp_url, MCP_KEY = pool.mcp_key }
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end
  local function get()
    if not flow then flow = mcpt.node(CLIENT, "flow", env()) end
    return flow
  end

  it("negotiates 2025-06-18 and gets an Mcp-Session-Id", function()
    assert.equal("2025-06-18", get().protocolVersion)
    assert.matches("^%x+$", get().sessionId)
    assert.equal(32, #get().sessionId)
  end)

  describe("one environment, start to end", function()
    flow_specs(get)
  end)

  it("refuses a wrong key with 401", function()
    local r = mcpt.node(CLIENT, "wrongKey", env())
    assert.is_false(r.connected)
    assert.equal(401, r.code)
  end)

  it("answers a session id it never gave with 404", function()
    local r = mcpt.node(CLIENT, "unknownSession", env())
    assert.is_false(r.bogus.ok)
    assert.equal(404, r.bogus.code)
  end)

  it("deletes the environments of an MCP session ended with DELETE", function()
    local r = mcpt.node(CLIENT, "endSession", env())
    assert.is_true(r.terminated.ok)
    -- the environment's session is gone from the pool (seen through the REST API)
    local res = pool:request{ path = "session", identifier = r.environmentId, api_version = "2025-02-02-preview" }
    assert.equal(404, res.status)
    -- and the MCP session id is no more
    local after = mcpt.post(pool, { jsonrpc = "2.0", id = 1, method = "ping" }, { ["Mcp-Session-Id"] = r.sessionId })
    assert.equal(404, after.status)
    assert.matches("ended, 1 environment deleted", pool:log())
  end)
end)
