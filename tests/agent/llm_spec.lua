-- The LLM client against a scripted OpenAI-compatible server: what it sends,
-- how it reads answers, errors and retries, and its configuration.

local llm = require "llm"
local openai_stub = require "agent.openai_stub"

local function env(vars)
  return function(name) return vars[name] end
end

local function user(text)
  return { { role = "user", content = text } }
end

describe("llm.config", function()
  it("says what to set when nothing is configured", function()
    local c, err = llm.config{ getenv = env{} }
    assert.is_nil(c)
    assert.matches("OPENAI_API_KEY", err)
    assert.matches("OPENAI_BASE_URL", err)
    assert.matches("AZURE_OPENAI_ENDPOINT", err)
  end)

  it("reads OpenAI settings from the environment", function()
    local c = assert(llm.config{ getenv = env{ OPENAI_API_KEY = "sk-1", OPENAI_MODEL = "gpt-x" } })
    assert.equal("openai", c.provider)
    assert.equal("https://api.openai.com/v1/chat/completions", c.url)
    assert.equal("gpt-x", c.model)
  end)

  it("takes a local server's base URL without a key", function()
    local c = assert(llm.config{ getenv = env{ OPENAI_BASE_URL = "http://127.0.0.1:11434/v1/" } })
    assert.equal("http://127.0.0.1:11434/v1/chat/completions", c.url)
    assert.is_nil(c.api_key)
  end)

  it("builds the Azure OpenAI deployment URL", function()
    local c = assert(llm.config{ getenv = env{
      AZURE_OPENAI_ENDPOINT = "https://res.openai.azure.com/",
      AZURE_OPENAI_DEPLOYMENT = "gpt4o-dep", AZURE_OPENAI_API_KEY = "k",
      OPENAI_API_VERSION = "2024-06-01" } })
    assert.equal("azure", c.provider)
    assert.equal("https://res.openai.azure.com/openai/deployments/gpt4o-dep/chat/completions"
                 .. "?api-version=2024-06-01", c.url)
  end)

  it("asks for a deployment on Azure", function()
    local c, err = llm.config{ getenv = env{ AZURE_OPENAI_ENDPOINT = "https://r.openai.azure.com" } }
    assert.is_nil(c)
    assert.matches("AZURE_OPENAI_DEPLOYMENT", err)
  end)

  it("refuses a base URL or endpoint that is not http(s)", function()
    local c, err = llm.config{ getenv = env{ OPENAI_BASE_URL = "localhost:11434/v1" } }
    assert.is_nil(c)
    assert.equal('OPENAI_BASE_URL must be an http:// or https:// URL, got "localhost:11434/v1"', err)
    c, err = llm.config{ getenv = env{ AZURE_OPENAI_ENDPOINT = "res.openai.azure.com",
                                       AZURE_OPENAI_DEPLOYMENT = "d" } }
    assert.is_nil(c)
    assert.matches("AZURE_OPENAI_ENDPOINT must be an https:// URL", err)
  end)

  it("lets options override the environment", function()
    local c = assert(llm.config{ getenv = env{ OPENAI_API_KEY = "sk-env", OPENAI_MODEL = "a" },
                                 model = "b", api_key = "sk-opt" })
    assert.equal("b", c.model)
    assert.equal("sk-opt", c.api_key)
  end)
end)

describe("llm client", function()
  local stub
  after_each(function() if stub then stub:stop(); stub = nil end end)

  local function client(opts)
    opts = opts or {}
    opts.base_url = opts.base_url or stub.base_url
    opts.api_key = opts.api_key or "sk-test"
    opts.model = opts.model or "test-model"
    opts.getenv = env{}
    return assert(llm.new(opts))
  end

  it("sends the model, the messages and the tools, and reads the reply", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = { openai_stub.answer("Hello!") } }
    local c = client{ defaults = { temperature = 0 } }
    local reply = c:chat{
      messages = user("Hi"),
      tools = { { name = "noop", description = "does nothing",
                  parameters = { type = "object", properties = {}, required = {} } } },
    }
    assert.equal("Hello!", reply.message.content)
    assert.equal("assistant", reply.message.role)
    assert.is_nil(reply.message.tool_calls)
    assert.equal("stop", reply.finish_reason)
    assert.equal(15, reply.usage.total_tokens)
    assert.equal("integer", math.type(reply.usage.total_tokens))   -- prints 15, not 15.0

    local reqs = stub:requests()
    assert.equal(1, #reqs)
    local r = reqs[1]
    assert.equal("/v1/chat/completions", r.path)
    assert.equal("Bearer sk-test", r.headers.authorization)
    assert.equal("application/json", r.headers["content-type"])
    assert.matches("^sesh%-llm/", r.headers["user-agent"])
    assert.equal("test-model", r.body.model)
    assert.equal(0, r.body.temperature)
    assert.same({ { role = "user", content = "Hi" } }, r.body.messages)
    -- An empty `required` list goes as an array (the stand-in, like the API,
    -- answers 400 to an object there) and `properties` as an object.
    assert.same({ { type = "function", ["function"] = {
      name = "noop", description = "does nothing",
      parameters = { type = "object", properties = {}, required = {} } } } }, r.body.tools)
    local raw = require("sessions.json").encode(llm.tool_spec{ name = "noop",
      parameters = { type = "object", properties = {}, required = {} } })
    assert.matches('"properties":{}', raw, 1, true)
    assert.matches('"required":[]', raw, 1, true)
  end)

  it("marks a strict tool for structured outputs", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = { openai_stub.answer("ok") } }
    client():chat{ messages = user("x"), tools = { { name = "s", description = "d", strict = true,
      parameters = { type = "object", properties = { a = { type = "string" } }, required = { "a" },
                     additionalProperties = false } } } }
    local fn = stub:requests()[1].body.tools[1]["function"]
    assert.is_true(fn.strict)
    assert.is_false(fn.parameters.additionalProperties)
  end)

  it("sends the organization and extra headers it is given", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = { openai_stub.answer("ok") } }
    client{ organization = "org-42", headers = { ["X-Trace"] = "t1" } }:chat{ messages = user("x") }
    local h = stub:requests()[1].headers
    assert.equal("org-42", h["openai-organization"])
    assert.equal("t1", h["x-trace"])
  end)

  it("returns tool calls in the API's shape, arguments as the model wrote them", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = {
      openai_stub.calls({ { id = "call_9", name = "f", arguments = '{"x": 1}' } }, "thinking") } }
    local reply = client():chat{ messages = user("go") }
    assert.equal("thinking", reply.message.content)
    assert.equal("tool_calls", reply.finish_reason)
    assert.same({ { id = "call_9", type = "function",
                    ["function"] = { name = "f", arguments = '{"x": 1}' } } },
                reply.message.tool_calls)
  end)

  it("sends no Authorization header to a local server configured without a key", function()
    stub = openai_stub.start{ steps = { openai_stub.answer("local") } }
    local c = assert(llm.new{ getenv = env{ OPENAI_BASE_URL = stub.base_url, OPENAI_MODEL = "llama3.1" } })
    assert.equal("local", c:chat{ messages = user("x") }.message.content)
    local r = stub:requests()[1]
    assert.is_nil(r.headers.authorization)
    assert.equal("llama3.1", r.body.model)
  end)

  it("accepts what some compatible servers send: arguments as an object, no call id", function()
    local raw = '{"object": "chat.completion", "choices": [{"index": 0, "finish_reason": "tool_calls",' ..
      ' "message": {"role": "assistant", "content": "", "tool_calls": [{"type": "function",' ..
      ' "function": {"name": "f", "arguments": {"x": 1}}}]}}]}'
    stub = openai_stub.start{ steps = { { status = 200, raw = raw } } }
    local reply = client():chat{ messages = user("x") }
    local call = reply.message.tool_calls[1]
    assert.equal("call_1", call.id)
    assert.equal('{"x":1}', call["function"].arguments)
    assert.is_nil(reply.usage)
  end)

  it("joins the text of content given as a list of parts", function()
    local raw = '{"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",' ..
      ' "content": [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "world"}]}}]}'
    stub = openai_stub.start{ steps = { { status = 200, raw = raw } } }
    assert.equal("Hello, world", client():chat{ messages = user("x") }.message.content)
  end)

  it("raises a 401 as an error with the API's fields and a hint, without retrying", function()
    stub = openai_stub.start{ api_key = "sk-right", steps = { openai_stub.answer("never") } }
    local ok, e = pcall(function() return client{ api_key = "sk-wrong" }:chat{ messages = user("x") } end)
    assert.is_false(ok)
    assert.is_true(llm.is_error(e))
    assert.equal("api", e.kind)
    assert.equal(401, e.status)
    assert.equal("invalid_api_key", e.code)
    assert.equal("invalid_request_error", e.type)
    assert.matches("Incorrect API key", e.message)
    local text = tostring(e)
    assert.matches("HTTP 401 invalid_api_key", text, 1, true)
    assert.matches("OPENAI_API_KEY", text)
    assert.not_matches("sk%-wrong", text)
    assert.equal(1, #stub:requests())
  end)

  it("retries a 429 after the Retry-After the server asked for", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = {
      { error = 429, retry_after = 1 }, openai_stub.answer("after the wait") } }
    local t0 = require("sessions.core").monotonic()
    local reply = client():chat{ messages = user("x") }
    assert.equal("after the wait", reply.message.content)
    local reqs = stub:requests()
    assert.equal(2, #reqs)
    assert.equal(429, reqs[1].status)
    assert.equal(200, reqs[2].status)
    assert.same(reqs[1].body, reqs[2].body)
    assert.is_true(require("sessions.core").monotonic() - t0 >= 1)
  end)

  it("retries 500 and 503", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = {
      { error = 500 }, { error = 503 }, openai_stub.answer("third time") } }
    assert.equal("third time", client():chat{ messages = user("x") }.message.content)
    assert.equal(3, #stub:requests())
  end)

  it("gives up after max_retries with the last error", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = {
      { error = 500 }, { error = 500 }, { error = 500 }, openai_stub.answer("too late") } }
    local ok, e = pcall(function() return client{ max_retries = 2 }:chat{ messages = user("x") } end)
    assert.is_false(ok)
    assert.equal(500, e.status)
    assert.equal("server_error", e.type)
    assert.equal(3, e.attempts)
    assert.equal(3, #stub:requests())
  end)

  it("reports a 400 with the parameter the API named", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = { openai_stub.answer("x") } }
    local ok, e = pcall(function()
      return client():chat{ messages = { { role = "tool", tool_call_id = "nope", content = "x" } } }
    end)
    assert.is_false(ok)
    assert.equal(400, e.status)
    assert.matches("tool", e.message)
    assert.equal("messages[0].role", e.param)
  end)

  it("raises a protocol error on an answer that is not JSON", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = { { status = 200, raw = "<html>oops" } } }
    local ok, e = pcall(function() return client():chat{ messages = user("x") } end)
    assert.is_false(ok)
    assert.equal("protocol", e.kind)
    assert.matches("not JSON", tostring(e))
    assert.matches("<html>oops", tostring(e), 1, true)
  end)

  it("raises a protocol error on JSON without choices", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = { { status = 200, raw = '{"id": "x"}' } } }
    local ok, e = pcall(function() return client():chat{ messages = user("x") } end)
    assert.is_false(ok)
    assert.equal("protocol", e.kind)
    assert.matches("choices", e.message)
  end)

  it("says a server it cannot reach as its own error, with the URL and what to check", function()
    stub = openai_stub.start{ steps = {} }
    local url = stub.base_url
    stub:stop(); stub = nil
    local c = assert(llm.new{ base_url = url, model = "m", max_retries = 0, getenv = env{} })
    local ok, e = pcall(c.chat, c, { messages = user("x") })
    assert.is_false(ok)
    assert.equal("transport", e.kind)
    assert.equal(7, e.code)                            -- CURLE_COULDNT_CONNECT
    assert.is_true(llm.is_error(e))
    assert.equal(url .. "/chat/completions", e.url)
    local text = tostring(e)
    assert.matches("^llm: chat failed from " .. url:gsub("%p", "%%%0") .. "/chat/completions: " ..
                   "Couldn't connect to server", text)
    local hint = "(is the server at OPENAI_BASE_URL (" .. url .. ") running?)"
    assert.equal(hint, text:sub(-#hint))
  end)

  describe("on Azure OpenAI", function()
    local function azure(opts)
      opts.provider = "azure"
      opts.azure_endpoint = stub.url
      opts.deployment = "gpt4o-dep"
      opts.api_version = "2024-10-21"
      opts.getenv = env{}
      return assert(llm.new(opts))
    end

    it("calls the deployment with the api-key header", function()
      stub = openai_stub.start{ azure = { deployment = "gpt4o-dep", api_key = "az-key" },
                                steps = { openai_stub.answer("from azure") } }
      local reply = azure{ api_key = "az-key" }:chat{ messages = user("x") }
      assert.equal("from azure", reply.message.content)
      local r = stub:requests()[1]
      assert.equal("/openai/deployments/gpt4o-dep/chat/completions", r.path)
      assert.equal("2024-10-21", r.query["api-version"])
      assert.equal("az-key", r.headers["api-key"])
      assert.is_nil(r.headers.authorization)
      assert.is_nil(r.body.model)
    end)

    it("sends an Entra token from a function as a bearer token", function()
      stub = openai_stub.start{ azure = { deployment = "gpt4o-dep", token = "entra-tok" },
                                steps = { openai_stub.answer("ok") } }
      local asked = 0
      local c = azure{ token = function() asked = asked + 1; return "entra-tok" end }
      assert.equal("ok", c:chat{ messages = user("x") }.message.content)
      assert.equal(1, asked)
      assert.equal("Bearer entra-tok", stub:requests()[1].headers.authorization)
    end)

    it("signs in again once when a credential's token is refused", function()
      stub = openai_stub.start{ azure = { deployment = "gpt4o-dep", token = "fresh" },
                                steps = { openai_stub.answer("ok") } }
      local cred = { current = "stale" }
      function cred:token() return self.current end
      function cred:invalidate() self.current = "fresh" end
      assert.equal("ok", azure{ token = cred }:chat{ messages = user("x") }.message.content)
      local reqs = stub:requests()
      assert.equal(2, #reqs)
      assert.equal(401, reqs[1].status)
      assert.equal("Bearer fresh", reqs[2].headers.authorization)
    end)

    it("signs in with Microsoft Entra for Azure OpenAI's scope when given no key", function()
      stub = openai_stub.start{ azure = { deployment = "gpt4o-dep", token = "entra-issued",
                                          entra = { client_id = "app", client_secret = "s3cret" } },
                                steps = { openai_stub.answer("signed in"), openai_stub.answer("again") } }
      local c = azure{ entra = { tenant_id = "my-tenant", client_id = "app", client_secret = "s3cret",
                                 authority_host = stub.url, sources = { "service_principal" },
                                 getenv = env{} } }
      assert.equal("signed in", c:chat{ messages = user("x") }.message.content)
      assert.equal("again", c:chat{ messages = user("y") }.message.content)
      local reqs = stub:requests()
      assert.equal(3, #reqs)                     -- one sign-in, cached for the second call
      assert.equal("/my-tenant/oauth2/v2.0/token", reqs[1].path)
      assert.equal("https://cognitiveservices.azure.com/.default", reqs[1].form.scope)
      assert.equal("client_credentials", reqs[1].form.grant_type)
      assert.equal("Bearer entra-issued", reqs[2].headers.authorization)
      assert.equal("Bearer entra-issued", reqs[3].headers.authorization)
    end)

    it("says why Entra sign-in failed, without the secret", function()
      stub = openai_stub.start{ azure = { deployment = "gpt4o-dep", token = "t",
                                          entra = { client_id = "app", client_secret = "right" } },
                                steps = { openai_stub.answer("never") } }
      local c = azure{ entra = { tenant_id = "tn", client_id = "app", client_secret = "wrong-secret",
                                 authority_host = stub.url, sources = { "service_principal" },
                                 getenv = env{} } }
      local ok, e = pcall(c.chat, c, { messages = user("x") })
      assert.is_false(ok)
      local text = tostring(e)
      assert.matches("invalid_client", text)
      assert.not_matches("wrong%-secret", text)
      assert.equal(1, #stub:requests())          -- no chat request without a token
    end)

    it("names the Azure settings when the key is refused", function()
      stub = openai_stub.start{ azure = { deployment = "gpt4o-dep", api_key = "right" },
                                steps = { openai_stub.answer("x") } }
      local ok, e = pcall(function() return azure{ api_key = "wrong" }:chat{ messages = user("x") } end)
      assert.is_false(ok)
      assert.equal(401, e.status)
      assert.matches("Access denied", e.message)
      assert.matches("AZURE_OPENAI_API_KEY", tostring(e))
    end)
  end)

  it("sends quotes, escapes and UTF-8 intact", function()
    stub = openai_stub.start{ api_key = "sk-test", steps = { openai_stub.answer("ok") } }
    client():chat{ messages = user('quotes " and \\ and \n and ünïcode') }
    local r = stub:requests()[1]
    assert.equal('quotes " and \\ and \n and ünïcode', r.body.messages[1].content)
    assert.is_nil(r.raw_body)
  end)
end)
