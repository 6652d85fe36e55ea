-- llm.lua: a client for OpenAI-compatible chat completions, with tool calling.
--
--   local llm = require "llm"
--   local client = assert(llm.new())          -- configured from the environment
--   local reply = client:chat{ messages = { { role = "user", content = "Hi" } } }
--   print(reply.message.content)
--
-- One client speaks to OpenAI, to any server with the same API (Ollama, a
-- llama.cpp server, vLLM, ...) through its base URL, or to Azure OpenAI (a
-- deployment on a resource endpoint, with an api-key or a Microsoft Entra
-- token). HTTP goes through the host's libcurl (sessions.http), JSON through
-- sessions.json. API errors are sesh's error value (sessions.errors) with
-- module = "llm" (llm.is_error tells them); 429 and 5xx are retried.

local http = require "sessions.http"
local json = require "sessions.json"
local errors = require "sessions.errors"

local M = {}

M.DEFAULT_BASE_URL = "https://api.openai.com/v1"
M.DEFAULT_MODEL = "gpt-4o"
M.DEFAULT_AZURE_API_VERSION = "2024-10-21"
M.USER_AGENT = "sesh-llm/0.1 (Language=Lua)"

-- What a user must set when nothing is configured; the LLM scripts print it.
M.SETUP_HELP = [[
No LLM is configured. Set one of:
  OpenAI:         OPENAI_API_KEY=sk-...            (optional: OPENAI_MODEL, default gpt-4o)
  a compatible server, e.g. Ollama or llama.cpp:
                  OPENAI_BASE_URL=http://localhost:11434/v1  OPENAI_MODEL=llama3.1
                  (OPENAI_API_KEY only if that server wants one)
  Azure OpenAI:   AZURE_OPENAI_ENDPOINT=https://<resource>.openai.azure.com
                  AZURE_OPENAI_DEPLOYMENT=<deployment name>
                  AZURE_OPENAI_API_KEY=<key>  or  AZURE_OPENAI_AD_TOKEN=<Entra token>
                  (optional: OPENAI_API_VERSION, default ]] .. M.DEFAULT_AZURE_API_VERSION .. ")"

---------------------------------------------------------------------------
-- Errors: sesh's error value, { module = "llm", op = "chat", kind = "api" |
-- "protocol" | "config", status, type, code, param, message, url, hint, ... }.

local function raise(fields)
  fields.module, fields.op = "llm", "chat"
  errors.raise(fields)
end

--- True when `e` is an error raised by this module.
function M.is_error(e)
  return errors.is(e) and e.module == "llm"
end

---------------------------------------------------------------------------
-- Configuration.

-- A lookup of the environment in which an empty variable counts as unset.
local function environment(getenv)
  return function(name)
    local v = getenv(name)
    if v == "" then return nil end
    return v
  end
end

local function strip_slash(url)
  return (url:gsub("/+$", ""))
end

--- The settings a client would use, from `opts` then the environment.
-- Returns the settings, or nil and a message saying what to set.
-- opts.getenv replaces os.getenv (tests give a fixed environment).
function M.config(opts)
  opts = opts or {}
  local env = environment(opts.getenv or os.getenv)
  local c = {
    timeout = opts.timeout or 600,
    connect_timeout = opts.connect_timeout or 10,
    max_retries = opts.max_retries or 3,
    retry_total = opts.retry_total or 300,
    headers = opts.headers or {},
    defaults = opts.defaults or {},   -- request fields sent every time (temperature, ...)
  }
  local provider = opts.provider
  if not provider then
    if opts.azure_endpoint then provider = "azure"
    elseif opts.base_url or opts.api_key then provider = "openai"
    elseif env("AZURE_OPENAI_ENDPOINT") and not env("OPENAI_BASE_URL") then provider = "azure"
    else provider = "openai" end
  end
  c.provider = provider

  if provider == "azure" then
    c.endpoint = opts.azure_endpoint or env("AZURE_OPENAI_ENDPOINT")
    c.deployment = opts.deployment or env("AZURE_OPENAI_DEPLOYMENT") or opts.model
      or env("OPENAI_MODEL")
    c.api_version = opts.api_version or env("OPENAI_API_VERSION")
      or env("AZURE_OPENAI_API_VERSION") or M.DEFAULT_AZURE_API_VERSION
    c.api_key = opts.api_key or env("AZURE_OPENAI_API_KEY")
    -- token: a string, a function returning one, or a credential with
    -- :token() (sessions.auth). With neither key nor token, Microsoft Entra
    -- sign-in (sessions.auth.chain) is tried when the first request is made.
    c.token = opts.token or env("AZURE_OPENAI_AD_TOKEN")
    c.entra = opts.entra     -- options of sessions.auth.chain (tenant_id, client_id, ...)
    if not c.endpoint then return nil, M.SETUP_HELP end
    if not c.endpoint:find("^https?://[^/]") then
      return nil, ("AZURE_OPENAI_ENDPOINT must be an https:// URL, got %q"):format(c.endpoint)
    end
    if not c.deployment then
      return nil, "Azure OpenAI needs a deployment: set AZURE_OPENAI_DEPLOYMENT " ..
                  "(or pass deployment = ...)"
    end
    c.model = c.deployment
    c.url = ("%s/openai/deployments/%s/chat/completions?api-version=%s"):format(
      strip_slash(c.endpoint), c.deployment, c.api_version)
  elseif provider == "openai" then
    c.api_key = opts.api_key or env("OPENAI_API_KEY")
    c.base_url = opts.base_url or env("OPENAI_BASE_URL")
    -- A key, or a server of one's own: anything else means nothing is configured.
    if not c.api_key and not c.base_url then return nil, M.SETUP_HELP end
    c.base_url = strip_slash(c.base_url or M.DEFAULT_BASE_URL)
    if not c.base_url:find("^https?://[^/]") then
      return nil, ("OPENAI_BASE_URL must be an http:// or https:// URL, got %q"):format(c.base_url)
    end
    c.model = opts.model or env("OPENAI_MODEL") or M.DEFAULT_MODEL
    c.organization = opts.organization or env("OPENAI_ORG_ID")
    c.url = c.base_url .. "/chat/completions"
  else
    return nil, ("unknown provider %q (expected \"openai\" or \"azure\")"):format(provider)
  end
  return c
end

---------------------------------------------------------------------------
-- JSON on the wire.

local null = json.null

-- A schema written in Lua, as JSON: the keywords that hold lists are sent as
-- arrays even when empty (`required = {}` is [], not {}).
local LIST_KEYWORDS = { required = true, enum = true, anyOf = true, oneOf = true, allOf = true }

local function wire_schema(schema)
  if type(schema) ~= "table" then return schema end
  local copy = {}
  for k, v in pairs(schema) do copy[k] = wire_schema(v) end
  for k in pairs(LIST_KEYWORDS) do
    if type(copy[k]) == "table" then json.array(copy[k]) end
  end
  return copy
end

--- A tool definition as the API wants it: { type = "function", function = {...} }.
function M.tool_spec(tool)
  return {
    type = "function",
    ["function"] = {
      name = tool.name,
      description = tool.description,
      parameters = wire_schema(tool.parameters or { type = "object", properties = {} }),
      strict = tool.strict,   -- OpenAI's structured outputs, when the tool asks
    },
  }
end

-- A message of the transcript as the API wants it (content null, not absent,
-- on an assistant message that only calls tools).
local function wire_message(m)
  local w = {}
  for k, v in pairs(m) do w[k] = v end
  if w.content == nil then w.content = null end
  return w
end

-- Turn JSON nulls into nils, recursively, so callers test with `if x then`.
local function denull(v)
  if v == null then return nil end
  if type(v) == "table" then
    for k, x in pairs(v) do v[k] = denull(x) end
  end
  return v
end

---------------------------------------------------------------------------
-- The client.

local Client = { __name = "llm.client" }
Client.__index = Client

--- A client. Options override the environment:
--   api_key, base_url, model                    OpenAI or a compatible server
--   azure_endpoint, deployment, api_version,
--   api_key or token (string, function or
--   credential), entra (sign-in options)        Azure OpenAI
--   provider = "openai" | "azure"               when both are configured
--   ca_file (a private CA's PEM bundle)
--   timeout (600 s), connect_timeout (10 s), max_retries (3), retry_total
--   (300 s: no retry starts later than that after the first try), headers,
--   defaults = { temperature = 0, ... }          fields added to every request
-- Returns the client, or nil and a message that says what to set.
function M.new(opts)
  local c, err = M.config(opts)
  if not c then return nil, err end
  c.http = http.client{
    connect_timeout = c.connect_timeout,
    timeout = c.timeout,
    user_agent = M.USER_AGENT,
    ca_file = opts and opts.ca_file,     -- else CURL_CA_BUNDLE, SSL_CERT_FILE, the system's
  }
  return setmetatable(c, Client)
end

M.AZURE_SCOPE = "https://cognitiveservices.azure.com/.default"

-- A Microsoft Entra token for Azure OpenAI, from the token option or sign-in.
function Client:entra_token()
  local token = self.token
  if token == nil then
    local chain_opts = {}
    for k, v in pairs(self.entra or {}) do chain_opts[k] = v end
    chain_opts.scope = chain_opts.scope or M.AZURE_SCOPE
    token = require("sessions.auth").chain(chain_opts)
    self.token = token
  end
  if type(token) == "function" then token = token() end
  if type(token) == "table" or type(token) == "userdata" then token = token:token() end
  if type(token) ~= "string" or token == "" then
    raise{ kind = "config", url = self.url, message = "the Entra token source gave no token" }
  end
  return token
end

function Client:auth_headers()
  local h = { ["Content-Type"] = "application/json", Accept = "application/json" }
  if self.provider == "azure" then
    if self.api_key then
      h["api-key"] = self.api_key
    else
      h.Authorization = "Bearer " .. self:entra_token()
    end
  else
    if self.api_key then h.Authorization = "Bearer " .. self.api_key end
    if self.organization then h["OpenAI-Organization"] = self.organization end
  end
  for k, v in pairs(self.headers) do h[k] = v end
  return h
end

-- Statuses worth another try: timeouts, conflicts, rate limits and the
-- server's own trouble (what OpenAI's own clients retry). The transport waits
-- what Retry-After says, else a jittered exponential backoff.
M.RETRY_STATUSES = { 408, 409, 429, 500, 502, 503, 504 }

-- The error an unsuccessful answer stands for, with the fields the API gave.
local function api_error(self, res)
  local e = { kind = "api", status = res.status, url = self.url,
              request_id = res.headers["x-request-id"] or res.headers["apim-request-id"] }
  local ok, body = pcall(json.decode, res.body or "")
  local err = ok and type(body) == "table" and body.error
  if type(err) == "table" then
    e.message = denull(err.message)
    e.type = denull(err.type)
    e.code = denull(err.code)
    e.param = denull(err.param)
  elseif type(err) == "string" then          -- some compatible servers: {"error": "..."}
    e.message = err
  else
    local text = (res.body or ""):sub(1, 200)
    e.message = text ~= "" and text or "(empty body)"
  end
  if res.status == 401 then
    e.hint = self.provider == "azure" and "check AZURE_OPENAI_API_KEY or the Entra token"
             or "check OPENAI_API_KEY"
  elseif res.status == 404 then
    e.hint = self.provider == "azure"
             and "check AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_DEPLOYMENT and the api-version"
             or ("check OPENAI_BASE_URL and OPENAI_MODEL (model %q)"):format(self.model)
  end
  return e
end

-- What to check when the server could not be reached at all.
local function connect_hint(self)
  if self.provider == "azure" then return "check AZURE_OPENAI_ENDPOINT and the network" end
  if self.base_url ~= M.DEFAULT_BASE_URL then
    return ("is the server at OPENAI_BASE_URL (%s) running?"):format(self.base_url)
  end
  return "check the network (and https_proxy, if one is needed)"
end

--- POST a JSON body; returns the decoded answer. The transport retries
-- 408/409/429/5xx (max_retries more attempts, within retry_total seconds);
-- a 401 with a refreshable Entra credential signs in again once.
function Client:post(body)
  local payload = json.encode(body)
  local refreshed = false
  while true do
    local sent, res = pcall(self.http.request, self.http, {
      method = "POST", url = self.url, headers = self:auth_headers(), body = payload,
      retry = { max = self.max_retries + 1, statuses = M.RETRY_STATUSES,
                total = self.retry_total, base = 0.5, cap = 8 },
    })
    if not sent then
      -- the transport's error value, now the chat's: "llm: chat failed from URL: ..."
      if errors.is(res) and res.kind ~= "interrupted" then
        res.module, res.op, res.url = "llm", "chat", self.url
        res.message = tostring(res.message):gsub("^%u+ %S+: ", "")   -- the URL is its own field
        if res.kind == "transport" then res.hint = connect_hint(self) end
        res.retries = (res.attempts or 1) - 1
      end
      error(res, 0)
    end
    if res.status >= 200 and res.status < 300 then
      local ok, answer = pcall(json.decode, res.body or "")
      if not ok or type(answer) ~= "table" then
        raise{ kind = "protocol", status = res.status, url = self.url,
               message = "the answer is not JSON: " .. (res.body or ""):sub(1, 200) }
      end
      return answer
    end
    local cred = self.token
    if res.status == 401 and not refreshed and not self.api_key
       and type(cred) == "table" and cred.invalidate then
      cred:invalidate()        -- a token revoked early: sign in again, once
      refreshed = true
    else
      local e = api_error(self, res)
      e.attempts = res.attempts
      raise(e)
    end
  end
end

--- One chat completion. `req` holds the API's request fields: messages (a
-- list of {role, content, tool_calls, tool_call_id}), tools (a list of
-- {name, description, parameters} or of ready API tool specs), and any other
-- field (temperature, tool_choice, ...) sent as is. Returns
--   { message = { role, content, tool_calls = { {id, type, ["function"] =
--                 {name, arguments}}, ... } },
--     finish_reason, usage, model, id, raw }
-- in the API's own shape, so the message goes back into `messages` as is;
-- `arguments` is the raw JSON text the model wrote.
function Client:chat(req)
  local body = {}
  for k, v in pairs(self.defaults) do body[k] = v end
  for k, v in pairs(req) do body[k] = v end
  if self.provider ~= "azure" then body.model = body.model or self.model end
  local msgs = {}
  for i, m in ipairs(req.messages or {}) do msgs[i] = wire_message(m) end
  body.messages = msgs
  if req.tools then
    if #req.tools == 0 then
      body.tools = nil
    else
      local specs = {}
      for i, t in ipairs(req.tools) do
        specs[i] = t.type == "function" and t["function"] and t or M.tool_spec(t)
      end
      body.tools = specs
    end
  end

  local answer = self:post(body)
  local choice = type(answer.choices) == "table" and answer.choices[1]
  if type(choice) ~= "table" or type(choice.message) ~= "table" then
    raise{ kind = "protocol", url = self.url,
           message = "the answer has no choices[1].message: " .. json.encode(answer):sub(1, 200) }
  end
  local m = denull(choice.message)
  local content = m.content
  if type(content) == "table" then
    -- Content as a list of parts (some servers): the text parts, joined.
    local texts = {}
    for _, part in ipairs(content) do
      if type(part) == "table" and type(part.text) == "string" then texts[#texts + 1] = part.text end
    end
    content = table.concat(texts)
  end
  local message = { role = m.role or "assistant", content = content }
  if type(m.tool_calls) == "table" and #m.tool_calls > 0 then
    message.tool_calls = {}
    for i, call in ipairs(m.tool_calls) do
      local fn = call["function"] or {}
      local args = fn.arguments
      -- Some compatible servers send the arguments as an object, not as text.
      if type(args) == "table" then args = json.encode(args) end
      message.tool_calls[i] = {
        id = call.id or ("call_" .. i),
        type = "function",
        ["function"] = { name = fn.name, arguments = args or "" },
      }
    end
  end
  return {
    message = message,
    finish_reason = denull(choice.finish_reason),
    usage = denull(answer.usage),
    model = denull(answer.model),
    id = denull(answer.id),
    raw = answer,
  }
end

function Client:close()
  if self.http then self.http:close(); self.http = nil end
end
Client.__close = Client.close

return M
