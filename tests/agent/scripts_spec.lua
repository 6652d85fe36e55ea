-- The LLM workflows (scripts/agent.lua, scripts/data_analyst.lua) run in the
-- real host: without a model they say what to set; with the scripted model
-- server and a real sesh-pool they run the model's Python and send back what
-- the session answered.

local cjson = require "cjson"
local script = require "pipeline.script"
local openai_stub = require "agent.openai_stub"

local calls, answer = openai_stub.calls, openai_stub.answer

-- No model configured, whatever the developer's own shell holds.
local NO_LLM = { OPENAI_API_KEY = false, OPENAI_BASE_URL = false, OPENAI_MODEL = false,
                 AZURE_OPENAI_ENDPOINT = false, AZURE_OPENAI_API_KEY = false,
                 AZURE_OPENAI_DEPLOYMENT = false, AZURE_OPENAI_AD_TOKEN = false }

-- A tool result as the session's invoke JSON; anything else fails with the text.
local function invoke_json(content)
  local ok, r = pcall(cjson.decode, content)
  assert(ok and type(r) == "table", "the tool result is not the invoke JSON: " .. tostring(content))
  return r
end

local function model_env(stub)
  local env = {}
  for k, v in pairs(NO_LLM) do env[k] = v end
  env.OPENAI_BASE_URL = stub.base_url
  env.OPENAI_API_KEY = "sk-test"
  env.OPENAI_MODEL = "stub-model"
  return env
end

describe("LLM scripts without a model configured", function()
  for _, name in ipairs{ "agent.lua", "data_analyst.lua" } do
    it(name .. " says what to set and exits with status 1", function()
      local code, out, err = script.run("scripts/" .. name, {}, NO_LLM)
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("No LLM is configured", err)
      for _, var in ipairs{ "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL",
                            "AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_DEPLOYMENT",
                            "AZURE_OPENAI_API_KEY" } do
        assert.matches(var, err, 1, true)
      end
    end)
  end

  it("agent.lua refuses an unknown option with its usage", function()
    local code, _, err = script.run("scripts/agent.lua", { "--bogus" }, NO_LLM)
    assert.equal(2, code)
    assert.matches('unknown option "--bogus"', err, 1, true)
    assert.matches("usage: sesh scripts/agent.lua", err, 1, true)
  end)
end)

describe("LLM scripts with a model server that does not answer", function()
  for _, name in ipairs{ "agent.lua", "data_analyst.lua" } do
    it(name .. " says so in one sentence with the hint, and exits 1", function()
      local stub = openai_stub.start{ steps = {} }
      local env = model_env(stub)
      stub:stop()                                       -- nothing listens there any more
      local pool = require("support.pool").start{}
      local args = { "--quiet", "--endpoint", pool.endpoint, "--token-file", pool.token_file }
      if name == "data_analyst.lua" then args[#args + 1] = "--out"; args[#args + 1] = script.tmpdir("llm") end
      local code, _, err = script.run("scripts/" .. name, args, env)
      pool:stop()
      assert.equal(1, code, err)
      assert.matches(name .. ": llm: chat failed from " .. env.OPENAI_BASE_URL .. "/chat/completions: " ..
                     "Couldn't connect to server", err, 1, true)
      assert.matches("(is the server at OPENAI_BASE_URL (" .. env.OPENAI_BASE_URL .. ") running?)\n",
                     err, 1, true)
      assert.is_nil(err:find("stack traceback", 1, true), err)
    end)
  end
end)

describe("LLM scripts against a scripted model and a real pool", function()
  local pool, stub
  setup(function() pool = require("support.pool").start{} end)
  teardown(function() if pool then pool:stop() end end)
  after_each(function() if stub then stub:stop(); stub = nil end end)

  local function pool_args(list)
    list[#list + 1] = "--endpoint"; list[#list + 1] = pool.endpoint
    list[#list + 1] = "--token-file"; list[#list + 1] = pool.token_file
    return list
  end

  it("agent.lua runs the seed's question: the model's code runs in a session", function()
    local code_sent = table.concat({
      "import math", "import random", "",
      "sin_pi = math.sin(math.pi)",
      "if sin_pi < 0:", "    random_number = random.uniform(0, 5)",
      "elif sin_pi > 0:", "    random_number = random.uniform(5, 10)",
      "else:", "    random_number = 0", "",
      "{'sin_pi': sin_pi, 'random_number': random_number}" }, "\n")
    stub = openai_stub.start{ api_key = "sk-test", steps = {
      calls{ { id = "call_py", name = "Python_REPL",
               arguments = cjson.encode{ python_code = code_sent } } },
      answer("sin(pi) is about 1.2e-16, positive, so the number is between 5 and 10.") } }
    local code, out, err = script.run("scripts/agent.lua", pool_args{}, model_env(stub))
    assert.equal(0, code, err)
    assert.matches("> Entering new AgentExecutor chain...", out, 1, true)
    assert.matches("Invoking: `Python_REPL` with `import math\n", out, 1, true)
    assert.matches("> Finished chain.", out, 1, true)

    local reqs = stub:requests()
    assert.equal(2, #reqs)
    -- The first request: the seed's question, the Python tool's schema, temperature 0.
    local first = reqs[1].body
    assert.equal("stub-model", first.model)
    assert.equal(0, first.temperature)
    assert.matches("what's sin of pi", first.messages[#first.messages].content, 1, true)
    local fn = first.tools[1]["function"]
    assert.equal("Python_REPL", fn.name)
    assert.same({ "python_code" }, fn.parameters.required)
    assert.equal("string", fn.parameters.properties.python_code.type)
    -- The second: the session's invoke JSON as the tool result.
    local tool_msg = reqs[2].body.messages[#reqs[2].body.messages]
    assert.equal("tool", tool_msg.role)
    assert.equal("call_py", tool_msg.tool_call_id)
    local r = invoke_json(tool_msg.content)
    assert.equal("Success", r.status)
    assert.equal("", r.stderr)
    assert.matches("^{'sin_pi': 1%.2246467991473532e%-16, 'random_number': ", r.result)
    local n = tonumber(r.result:match("'random_number': ([%d.]+)}"))
    assert.is_true(n >= 5 and n <= 10)
    -- The trace shows that same result to the reader.
    assert.matches("'sin_pi': 1.2246467991473532e-16", out, 1, true)
  end)

  it("agent.lua sends a Python failure back to the model as a Failure result", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = {
      calls{ { id = "c1", name = "Python_REPL", arguments = cjson.encode{ python_code = "1/0" } } },
      answer("Division by zero.") } }
    local code, out, err = script.run("scripts/agent.lua", pool_args{ "--quiet", "divide 1 by 0" },
                                      model_env(stub))
    assert.equal(0, code, err)
    assert.equal("Division by zero.\n", out)
    local msgs = stub:requests()[2].body.messages
    assert.equal("divide 1 by 0", msgs[2].content)
    local r = invoke_json(msgs[#msgs].content)
    assert.equal("Failure", r.status)
    assert.matches("ZeroDivisionError", r.stderr)
  end)

  it("agent.lua exits 1 when the model never answers within --max-steps", function()
    local steps = {}
    for i = 1, 3 do
      steps[i] = calls{ { id = "c" .. i, name = "Python_REPL",
                          arguments = cjson.encode{ python_code = "x = " .. i } } }
    end
    stub = openai_stub.start{ api_key = "sk-test", steps = steps }
    local code, _, err = script.run("scripts/agent.lua", pool_args{ "--max-steps", "2" },
                                    model_env(stub))
    assert.equal(1, code)
    assert.matches("no final answer (stopped: max_steps after 2 model calls)", err, 1, true)
    assert.equal(2, #stub:requests())
  end)

  it("data_analyst.lua takes a lone question about the shipped iris data", function()
    local out_dir = script.tmpdir("analyst")
    stub = openai_stub.start{ api_key = "sk-test", steps = { answer("Three species.") } }
    local code, _, err = script.run("scripts/data_analyst.lua",
      pool_args{ "--out", out_dir, "--quiet", "How many species are there?" }, model_env(stub))
    assert.equal(0, code, err)
    local msgs = stub:requests()[1].body.messages
    assert.matches("/mnt/data/iris.csv", msgs[1].content, 1, true)
    assert.equal("How many species are there?", msgs[2].content)
    assert.matches("Three species.", assert(script.read(out_dir .. "/answer.md")), 1, true)
  end)

  it("data_analyst.lua refuses a data file it cannot read", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = {} }
    local code, _, err = script.run("scripts/data_analyst.lua",
      pool_args{ "no/such/file.csv", "q?" }, model_env(stub))
    assert.equal(2, code)
    assert.matches("cannot read the data: no/such/file.csv", err, 1, true)
    assert.equal(0, #stub:requests())
  end)

  it("data_analyst.lua uploads the CSV, runs pandas, saves the chart and the answer", function()
    local out_dir = script.tmpdir("analyst")
    stub = openai_stub.start{ api_key = "sk-test", steps = {
      calls{ { id = "c1", name = "Python_REPL", arguments = cjson.encode{ python_code =
        "import pandas as pd\ndf = pd.read_csv('/mnt/data/iris.csv')\n" ..
        "round(df.groupby('species')['petal_length_cm'].mean().to_dict()['setosa'], 3)" } } },
      calls{ { id = "c2", name = "Python_REPL", arguments = cjson.encode{ python_code =
        "import matplotlib.pyplot as plt\n" ..
        "df.boxplot(column='petal_length_cm', by='species')\nplt.show()" } } },
      calls{ { id = "c3", name = "Python_REPL", arguments = cjson.encode{ python_code =
        "df.groupby('species').mean().to_csv('/mnt/data/means.csv')\n'saved'" } } },
      answer("Setosa: its petals average 1.462 cm (chart-1.png).") } }
    local code, out, err = script.run("scripts/data_analyst.lua",
      pool_args{ "--out", out_dir, "scripts/data/iris.csv", "Which species has the shortest petals?" },
      model_env(stub))
    assert.equal(0, code, err)
    assert.matches("Invoking: `Python_REPL` with `import pandas as pd", out, 1, true)

    local reqs = stub:requests()
    assert.equal(4, #reqs)
    local first = reqs[1].body.messages
    assert.equal("system", first[1].role)
    assert.matches("/mnt/data/iris.csv", first[1].content, 1, true)
    assert.matches("sepal_length_cm,sepal_width_cm", first[1].content, 1, true)
    assert.equal("Which species has the shortest petals?", first[2].content)

    local function tool_result(n)
      local msgs = reqs[n].body.messages
      return invoke_json(msgs[#msgs].content)
    end
    assert.equal(1.462, tool_result(2).result)
    local img = tool_result(3)
    assert.equal("Success", img.status)
    assert.same({ type = "image", format = "png", saved_as = "chart-1.png" }, img.result)
    assert.is_nil(reqs[3].body.messages[#reqs[3].body.messages].content:find("base64", 1, true))

    local png, why = script.png_info(out_dir .. "/chart-1.png")
    assert.is_table(png, why)
    assert.is_true(png.width > 100 and png.height > 100)
    local means = assert(script.read(out_dir .. "/means.csv"))
    assert.matches("^species,sepal_length_cm", means)
    assert.matches("setosa,5.006", means, 1, true)
    local md = assert(script.read(out_dir .. "/answer.md"))
    assert.matches("# Which species has the shortest petals?", md, 1, true)
    assert.matches("Setosa: its petals average 1.462 cm", md, 1, true)
    assert.matches("![chart-1.png](chart-1.png)", md, 1, true)
    assert.matches("means.csv", md, 1, true)
    assert.is_nil(script.read(out_dir .. "/iris.csv"))   -- the upload is not downloaded back
  end)
end)
