-- The agent loop against a scripted OpenAI-compatible server: each request
-- it sends (messages, tool schemas, tool results), bad tool calls answered
-- back to the model, the step limit, API errors and the trace.

local cjson = require "cjson"
local llm = require "llm"
local agent = require "agent"
local openai_stub = require "agent.openai_stub"

local calls, answer = openai_stub.calls, openai_stub.answer

local ADD_SCHEMA = {
  type = "object",
  properties = { a = { type = "number" }, b = { type = "number" } },
  required = { "a", "b" },
  additionalProperties = false,
}

describe("agent loop", function()
  local stub, ran

  local function add_tool()
    return {
      name = "add", description = "Adds two numbers.", parameters = ADD_SCHEMA,
      fn = function(args)
        ran[#ran + 1] = args
        return args.a + args.b
      end,
    }
  end

  local function make(opts)
    opts = opts or {}
    opts.llm = assert(llm.new{ base_url = stub.base_url, api_key = "sk-test", model = "m",
                               getenv = function() return nil end })
    opts.tools = opts.tools or { add_tool() }
    return agent.new(opts)
  end

  before_each(function() ran = {} end)
  after_each(function() if stub then stub:stop(); stub = nil end end)

  it("answers without tools in one request carrying the system prompt and tool schema", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = { answer("Four.") } }
    local res = make{ system = "Be brief." }:run("2+2?")
    assert.equal("Four.", res.output)
    assert.equal("answer", res.stopped)
    assert.equal(1, res.calls)
    assert.same({}, res.steps)
    local reqs = stub:requests()
    assert.equal(1, #reqs)
    assert.same({ { role = "system", content = "Be brief." }, { role = "user", content = "2+2?" } },
                reqs[1].body.messages)
    assert.same({ { type = "function", ["function"] = {
      name = "add", description = "Adds two numbers.", parameters = {
        type = "object", properties = { a = { type = "number" }, b = { type = "number" } },
        required = { "a", "b" }, additionalProperties = false } } } }, reqs[1].body.tools)
    -- the transcript ends with the model's answer
    assert.equal(3, #res.messages)
    assert.same({ role = "assistant", content = "Four." }, res.messages[3])
  end)

  it("runs a tool call and sends its result back with the call's id", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = {
      calls{ { id = "call_1", name = "add", arguments = '{"a": 2, "b": 3}' } },
      answer("2 + 3 = 5") } }
    local res = make():run("What is 2 + 3?")
    assert.equal("2 + 3 = 5", res.output)
    assert.equal(2, res.calls)
    assert.same({ { a = 2, b = 3 } }, ran)
    assert.equal(1, #res.steps)
    assert.equal("add", res.steps[1].tool)
    assert.equal("call_1", res.steps[1].id)
    assert.equal("5", res.steps[1].output)
    assert.is_false(res.steps[1].error)

    local second = stub:requests()[2].body.messages
    assert.equal(4, #second)
    assert.same({ role = "assistant", content = cjson.null,
                  tool_calls = { { id = "call_1", type = "function",
                                   ["function"] = { name = "add", arguments = '{"a": 2, "b": 3}' } } } },
                second[3])
    assert.same({ role = "tool", tool_call_id = "call_1", content = "5" }, second[4])
  end)

  it("sends an assistant message that only calls tools with content null", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = {
      calls{ { id = "c1", name = "add", arguments = '{"a": 1, "b": 1}' } }, answer("2") } }
    make():run("1+1")
    local msg = stub:requests()[2].body.messages[3]
    assert.equal("assistant", msg.role)
    assert.equal(cjson.null, msg.content)   -- null, as the official clients send it
  end)

  it("runs every call of a message with parallel tool calls, in order", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = {
      calls{ { id = "c1", name = "add", arguments = '{"a": 1, "b": 2}' },
             { id = "c2", name = "add", arguments = '{"a": 10, "b": 20}' } },
      answer("3 and 30") } }
    local res = make():run("two sums")
    assert.same({ { a = 1, b = 2 }, { a = 10, b = 20 } }, ran)
    local msgs = stub:requests()[2].body.messages
    assert.same({ role = "tool", tool_call_id = "c1", content = "3" }, msgs[4])
    assert.same({ role = "tool", tool_call_id = "c2", content = "30" }, msgs[5])
    assert.equal("3 and 30", res.output)
  end)

  it("reports arguments that are not JSON back to the model, without running the tool", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = {
      calls{ { id = "bad", name = "add", arguments = '{"a": 2, "b": ' } },
      calls{ { id = "good", name = "add", arguments = '{"a": 2, "b": 2}' } },
      answer("4") } }
    local res = make():run("2+2")
    assert.equal("4", res.output)
    assert.same({ { a = 2, b = 2 } }, ran)           -- only the good call ran
    assert.is_true(res.steps[1].error)
    local msgs = stub:requests()[2].body.messages
    assert.equal("tool", msgs[4].role)
    assert.equal("bad", msgs[4].tool_call_id)
    assert.matches("^Error: the arguments of add are not valid JSON", msgs[4].content)
  end)

  it("reports arguments that do not fit the schema, naming the field", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = {
      calls{ { id = "t1", name = "add", arguments = '{"a": "two", "b": 2}' },
             { id = "t2", name = "add", arguments = '{"a": 1}' },
             { id = "t3", name = "add", arguments = '{"a": 1, "b": 2, "c": 3}' },
             { id = "t4", name = "add", arguments = '[1, 2]' } },
      answer("gave up") } }
    local res = make():run("sum")
    assert.same({}, ran)
    local msgs = stub:requests()[2].body.messages
    assert.matches("do not fit its schema: $.a: expected number, got string", msgs[4].content, 1, true)
    assert.matches('$: missing required property "b"', msgs[5].content, 1, true)
    assert.matches('$: unexpected property "c"', msgs[6].content, 1, true)
    assert.matches("$: expected object, got array", msgs[7].content, 1, true)
    assert.equal(4, #res.steps)
  end)

  it("reports a call to a tool that does not exist, listing the tools", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = {
      calls{ { id = "x", name = "multiply", arguments = '{}' } }, answer("ok") } }
    make():run("3*4")
    local msg = stub:requests()[2].body.messages[4]
    assert.equal('Error: there is no tool named "multiply". The tools are: add.', msg.content)
  end)

  it("reports an error the tool raised, and goes on", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = {
      calls{ { id = "x", name = "div", arguments = '{"n": 0}' } }, answer("cannot divide by zero") } }
    local res = make{ tools = { {
      name = "div", description = "1/n", fn = function(args)
        if args.n == 0 then error("division by zero", 0) end
        return 1 / args.n
      end,
      parameters = { type = "object", properties = { n = { type = "number" } }, required = { "n" } },
    } } }:run("1/0")
    assert.equal("Error: division by zero", stub:requests()[2].body.messages[4].content)
    assert.equal("cannot divide by zero", res.output)
  end)

  it("lets a Ctrl-C in a tool end the run instead of telling the model", function()
    for _, interrupt in ipairs{ { kind = "interrupted", message = "interrupted by Ctrl-C" },
                                "stdin:1: interrupted!" } do
      stub = openai_stub.start{ api_key = "sk-test", steps = {
        calls{ { id = "x", name = "slow", arguments = "{}" } }, answer("never asked") } }
      local a = make{ tools = { { name = "slow", description = "waits",
                                   fn = function() error(interrupt, 0) end } } }
      local ok, e = pcall(a.run, a, "wait")
      assert.is_false(ok)
      assert.equal(interrupt, e)
      assert.equal(1, #stub:requests())
      stub:stop(); stub = nil
    end
  end)

  it("sends a table result as JSON", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = {
      calls{ { id = "x", name = "info", arguments = '' } }, answer("done") } }
    make{ tools = { { name = "info", description = "facts", fn = function()
      return { answer = 42 }
    end } } }:run("facts")
    assert.equal('{"answer":42}', stub:requests()[2].body.messages[4].content)
  end)

  it("stops at the step limit, after running the last step's calls", function()
    local steps = {}
    for i = 1, 5 do
      steps[i] = calls{ { id = "c" .. i, name = "add", arguments = ('{"a": %d, "b": 0}'):format(i) } }
    end
    stub = openai_stub.start{ api_key = "sk-test", steps = steps }
    local res = make{ max_steps = 3 }:run("loop forever")
    assert.equal("max_steps", res.stopped)
    assert.is_nil(res.output)
    assert.equal(3, res.calls)
    assert.equal(3, #stub:requests())       -- no fourth request
    assert.same({ { a = 1, b = 0 }, { a = 2, b = 0 }, { a = 3, b = 0 } }, ran)
    local last = res.messages[#res.messages]
    assert.same({ role = "tool", tool_call_id = "c3", content = "3" }, last)
  end)

  it("says when the answer was cut by the model's length limit", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = {
      { reply = { content = "The answer is forty" }, finish_reason = "length" } } }
    local res = make():run("long question")
    assert.equal("length", res.stopped)
    assert.equal("The answer is forty", res.output)
  end)

  it("raises the API's error out of run", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = {
      calls{ { id = "c1", name = "add", arguments = '{"a": 1, "b": 1}' } },
      { error = 500 }, { error = 500 } } }
    local a = make()
    a.llm.max_retries = 1
    local ok, e = pcall(a.run, a, "1+1")
    assert.is_false(ok)
    assert.is_true(llm.is_error(e))
    assert.equal(500, e.status)
    assert.equal(2, e.attempts)
    assert.equal(3, #stub:requests())
    -- the run so far rides along
    assert.equal(1, #e.result.steps)
    assert.equal("2", e.result.steps[1].output)
    assert.equal("tool", e.result.messages[#e.result.messages].role)
  end)

  it("runs side by side with other agents in sessions.parallel", function()
    local sessions = require "sessions"
    -- Retry-After 3 s: ample time for the other agent's request, even on a busy machine.
    stub = openai_stub.start{ steps = { { error = 429, retry_after = 3 }, answer("first"), answer("second") } }
    local outputs = sessions.parallel({ "q1", "q2" }, function(q)
      return make{ tools = {} }:run(q).output
    end)
    local reqs = stub:requests()
    assert.equal(3, #reqs)
    assert.equal(429, reqs[1].status)
    -- The agent told to wait was answered last; the other went on meanwhile.
    local waited = reqs[1].body.messages[2].content
    assert.equal(waited, reqs[3].body.messages[2].content)
    assert.are_not.equal(waited, reqs[2].body.messages[2].content)
    local by_question = { q1 = outputs[1], q2 = outputs[2] }
    assert.equal("second", by_question[waited])
    assert.equal("first", by_question[waited == "q1" and "q2" or "q1"])
  end)

  it("carries on a conversation given as messages", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = { answer("You said hi.") } }
    local history = { { role = "user", content = "hi" }, { role = "assistant", content = "Hello!" },
                      { role = "user", content = "what did I say?" } }
    local res = make():run(history)
    assert.equal("You said hi.", res.output)
    assert.same(history, stub:requests()[1].body.messages)
  end)

  it("prints the AgentExecutor-style trace when verbose", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = {
      calls{ { id = "c1", name = "add", arguments = '{"a": 2, "b": 3}' } }, answer("Five.") } }
    local out = {}
    make{ verbose = true, trace = function(s) out[#out + 1] = s end }:run("2+3")
    local text = table.concat(out)
    assert.matches("> Entering new AgentExecutor chain...", text, 1, true)
    assert.matches('Invoking: `add` with `{"a": 2, "b": 3}`', text, 1, true)
    assert.matches("\n5Five.\n\n> Finished chain.\n$", text)
  end)

  it("prints nothing when not verbose", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = { answer("x") } }
    local out = {}
    make{ trace = function(s) out[#out + 1] = s end }:run("q")
    assert.same({}, out)
  end)

  it("refuses badly declared tools with a message naming them", function()
    stub = openai_stub.start{ steps = {} }
    assert.has_error(function() make{ tools = { { name = "has space", fn = print } } } end,
      "agent: tool \"has space\" needs a name of 1 to 64 letters, digits, _ or -")
    assert.has_error(function() make{ tools = { { name = "f" } } } end,
      "agent: tool \"f\" needs fn = function(args) ... end")
    assert.has_error(function() make{ tools = { add_tool(), add_tool() } } end,
      "agent: two tools are named \"add\"")
    assert.has_error(function()
      make{ tools = { { name = "f", fn = print, parameters = { type = "string" } } } }
    end, "agent: tool \"f\": parameters must be a JSON schema with type = \"object\"")
  end)
end)
