-- The built-in Python tool: its declaration, the input clean-up, and (end to
-- end, in a real session of a real pool) what it gives the model.

local cjson = require "cjson"
local python = require "agent.python"
local agent = require "agent"

describe("agent.python.sanitize", function()
  it("strips what models wrap code in", function()
    assert.equal("print(1)", python.sanitize("```python\nprint(1)\n```"))
    assert.equal("print(1)", python.sanitize("  `print(1)`  "))
    assert.equal("x = 1\ny = 2", python.sanitize("Python\nx = 1\ny = 2\n\n"))
    assert.equal("6 * 7", python.sanitize("python 6 * 7"))
  end)

  it("keeps a first name that only starts with python", function()
    assert.equal("python_version = 3", python.sanitize("python_version = 3"))
    assert.equal("pythonic = True", python.sanitize("```pythonic = True```"))
  end)

  it("keeps inner backticks and indentation", function()
    assert.equal("if x:\n    s = '`'", python.sanitize("\nif x:\n    s = '`'\n"))
  end)
end)

describe("agent.python.clip", function()
  it("leaves short text alone", function()
    assert.equal("abc", python.clip("abc", 10))
    assert.equal(("x"):rep(10), python.clip(("x"):rep(10), 10))
  end)

  it("keeps the head and the tail of long text and says how much went", function()
    local text = ("a"):rep(50) .. ("b"):rep(100) .. ("c"):rep(50)
    assert.equal(("a"):rep(50) .. "\n... [100 characters left out] ...\n" .. ("c"):rep(50),
                 python.clip(text, 100))
  end)

  it("never cuts a UTF-8 character in two", function()
    local out = python.clip(("é"):rep(100), 51)
    assert.is_truthy(utf8.len(out))
  end)
end)

describe("agent.python_tool", function()
  it("declares Python_REPL with one required string argument", function()
    local t = agent.python_tool({})
    assert.equal("Python_REPL", t.name)
    assert.matches("Python", t.description)
    assert.same({ type = "object", required = { "python_code" },
                  properties = { python_code = { type = "string",
                                                 description = "The Python code to run." } } },
                t.parameters)
    assert.equal("run_python", agent.python_tool({}, { name = "run_python" }).name)
  end)

  it("refuses something that is not a session", function()
    assert.has_error(function() agent.python_tool(nil) end,
      "agent.python_tool: expected a session (sessions.new{...})")
  end)

  it("tells the model when the pool cannot be reached, and the run goes on", function()
    local sessions = require "sessions"
    local llm = require "llm"
    local openai_stub = require "agent.openai_stub"
    local stub = openai_stub.start{ steps = {
      openai_stub.calls{ { id = "c1", name = "Python_REPL", arguments = '{"python_code": "1"}' } },
      openai_stub.answer("The Python tool is down.") } }
    local closed = openai_stub.start{ steps = {} }
    local dead = closed.url                     -- nobody listens there once it stopped
    closed:stop()
    local s = sessions.new{ endpoint = dead, token = "t", retries = 1 }
    local res = agent.new{
      llm = assert(llm.new{ base_url = stub.base_url, model = "m", getenv = function() end }),
      tools = { agent.python_tool(s) } }:run("run 1")
    local msgs = stub:requests()[2].body.messages
    stub:stop()
    assert.equal("The Python tool is down.", res.output)
    assert.is_true(res.steps[1].error)
    assert.matches("^Error: sessions: execute failed", msgs[#msgs].content)
  end)

  describe("in a real session", function()
    local pool, s
    setup(function()
      pool = require("support.pool").start{}
      s = pool:session{}
    end)
    teardown(function()
      if s then s:close() end
      if pool then pool:stop() end
    end)

    it("returns the invoke JSON: result, stdout, stderr, status", function()
      local t = agent.python_tool(s)
      local out = t.fn({ python_code = "```python\nprint('hi')\n6 * 7\n```" })
      assert.equal('{\n  "result": 42,\n  "stdout": "hi\\n",\n  "stderr": "",\n  "status": "Success"\n}', out)
    end)

    it("keeps state between calls, as the model expects", function()
      local t = agent.python_tool(s)
      t.fn({ python_code = "counter = 41" })
      assert.equal(42, cjson.decode(t.fn({ python_code = "counter + 1" })).result)
    end)

    it("reports a failure with its traceback", function()
      local r = cjson.decode(agent.python_tool(s).fn({ python_code = "undefined_name" }))
      assert.equal("Failure", r.status)
      assert.matches("NameError", r.stderr)
    end)

    it("hands images over and keeps their bytes out of the model's context", function()
      local got = {}
      local t = agent.python_tool(s, { on_image = function(img, call)
        got[#got + 1] = { img = img, call = call }
        return "plot.png"
      end })
      local out = t.fn({ python_code = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()" },
                       { id = "call_7" })
      assert.equal(1, #got)
      assert.equal("png", got[1].img.format)
      assert.equal("call_7", got[1].call.id)
      assert.is_true(#got[1].img.base64_data > 100)
      assert.is_nil(out:find(got[1].img.base64_data:sub(1, 40), 1, true))
      local r = cjson.decode(out)
      assert.same({ type = "image", format = "png", saved_as = "plot.png" }, r.result)
      assert.equal("Success", r.status)
    end)

    it("cuts a flood of output down to max_chars", function()
      local r = cjson.decode(agent.python_tool(s, { max_chars = 1000 }).fn({
        python_code = "print('x' * 100000)" }))
      assert.is_true(#r.stdout < 1100)
      assert.matches("\n%.%.%. %[%d+ characters left out%] %.%.%.\n", r.stdout)
    end)

    it("without on_image leaves only the type and format of an image", function()
      local r = cjson.decode(agent.python_tool(s).fn({
        python_code = "import matplotlib.pyplot as plt\nplt.plot([3, 1])\nplt.show()" }))
      assert.same({ type = "image", format = "png" }, r.result)
    end)
  end)
end)
