-- agent.mcp_tools: an MCP server's tools in an agent run, with the scripted
-- model (tests/support/openai_stub.py) calling sesh-pool's MCP tools over
-- stdio; and the options, with the SDK test server.

local cjson = require "cjson"
local llm = require "llm"
local agent = require "agent"
local mcp = require "mcp"
local mcpt = require "support.mcp"
local poolmod = require "support.pool"
local openai_stub = require "agent.openai_stub"
local util = require "support.util"

local calls, answer = openai_stub.calls, openai_stub.answer

local function model(stub)
  return assert(llm.new{ base_url = stub.base_url, api_key = "sk-test", model = "m",
                         getenv = function() return nil end })
end

describe("an agent with sesh-pool's MCP tools", function()
  local dir, client, stub
  setup(function()
    dir = poolmod.tmpdir()
    client = mcp.spawn{ command = poolmod.binary(), args = mcpt.stdio_args(dir), stderr = dir .. "/log" }
  end)
  teardown(function()
    if stub then stub:stop() end
    if client then client:close() end
    os.execute("rm -rf " .. util.quote(dir))
  end)

  it("runs Python, reads a file, sees a traceback and a figure, then answers", function()
    local env = client:call("launchShell").structuredContent.environmentId
    local function args(t) t.environmentId = env; return cjson.encode(t) end
    stub = openai_stub.start{ api_key = "sk-test", steps = {
      calls{ { id = "call_1", name = "runPythonCodeInRemoteEnvironment",
               arguments = args{ pythonCode = "open('answer.txt', 'w').write(str(6 * 7))\n6 * 7" } } },
      calls{ { id = "call_2", name = "downloadFile", arguments = args{ path = "answer.txt" } },
             { id = "call_3", name = "runPythonCodeInRemoteEnvironment", arguments = args{ pythonCode = "1 / 0" } } },
      calls{ { id = "call_4", name = "runPythonCodeInRemoteEnvironment",
               arguments = args{ pythonCode = "import matplotlib.pyplot as plt\nplt.plot([4, 2])\nplt.show()" } } },
      answer("6 * 7 is 42."),
    } }
    local saved = {}
    local a = agent.new{ llm = model(stub), tools = agent.mcp_tools(client, {
      on_image = function(block, call)
        local path = ("%s/%s.png"):format(dir, call.id)
        util.write(path, require("sessions.core").b64decode(block.data))
        saved[#saved + 1] = path
        return path
      end }) }
    local res = a:run("What is 6 * 7?")

    assert.equal("6 * 7 is 42.", res.output)
    assert.equal(4, res.calls)
    local tools, failed = {}, {}
    for i, s in ipairs(res.steps) do tools[i], failed[i] = s.tool, s.error end
    assert.same({ "runPythonCodeInRemoteEnvironment", "downloadFile", "runPythonCodeInRemoteEnvironment",
                  "runPythonCodeInRemoteEnvironment" }, tools)
    assert.same({ false, false, true, false }, failed)

    local reqs = stub:requests()
    -- the model was offered every MCP tool with its input schema
    local offered = {}
    for _, t in ipairs(reqs[1].body.tools) do offered[t["function"].name] = t["function"].parameters end
    assert.same({ "environmentId", "pythonCode" }, offered.runPythonCodeInRemoteEnvironment.required)
    assert.equal("string", offered.uploadFile.properties.content.type)
    local n = 0
    for _ in pairs(offered) do n = n + 1 end
    assert.equal(7, n)
    -- and read what the tools said
    local function tool_message(req, id)
      for _, m in ipairs(req.body.messages) do if m.tool_call_id == id then return m.content end end
    end
    assert.matches('"result":42', tool_message(reqs[2], "call_1"))
    assert.matches('"content":"42"', tool_message(reqs[3], "call_2"))
    local traceback = tool_message(reqs[3], "call_3")
    assert.matches("^Error: ", traceback)
    assert.matches("ZeroDivisionError", traceback)
    assert.matches("%[image 1 %(image/png%) saved as " .. dir:gsub("%p", "%%%0") .. "/call_4%.png%]",
                   tool_message(reqs[4], "call_4"))
    assert.is_nil(tool_message(reqs[4], "call_4"):match("iVBOR"))     -- no base64 in the model's context
    assert.equal("\137PNG\r\n\26\n", util.read(saved[1]):sub(1, 8))
  end)
end)

describe("agent.mcp_tools options", function()
  local client
  setup(function()
    mcpt.npm()
    client = mcp.spawn{ command = "node", args = { "tests/mcp/sdk_server.cjs", "stdio" },
                        env = { SESH_NPM = mcpt.NPM } }
  end)
  teardown(function() if client then client:close() end end)

  it("takes the tools named in only, prefixed, with their schemas", function()
    local tools = agent.mcp_tools(client, { prefix = "sdk_", only = { "add", "fail" } })
    assert.equal(2, #tools)
    assert.equal("sdk_add", tools[1].name)
    assert.equal("Adds two numbers.", tools[1].description)
    assert.equal("object", tools[1].parameters.type)
    assert.equal("number", tools[1].parameters.properties.a.type)
    assert.is_nil(tools[1].parameters["$schema"])
    assert.equal('{"sum":5}', tools[1].fn({ a = 2, b = 3 }))
    assert.equal("sdk_fail", tools[2].name)
    local ok, e = pcall(tools[2].fn, {})
    assert.is_false(ok)
    assert.equal("it failed on purpose", e)
  end)

  it("names images it is not told to save, and clips long text", function()
    local pixel
    for _, t in ipairs(agent.mcp_tools(client, { max_chars = 4 })) do
      if t.name == "pixel" then pixel = t end
    end
    assert.matches("^a \n%.%.%. %[3 characters left out%] %.%.%.\nel\n%[image 1: image/png, %d+ bytes of base64 not shown%]$",
                   pixel.fn({}))
  end)

  it("refuses something that is not an MCP client", function()
    assert.has_error(function() agent.mcp_tools({}) end,
      "agent.mcp_tools: expected an MCP client (mcp.connect{...} or mcp.spawn{...})")
  end)
end)
