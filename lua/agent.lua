-- agent.lua: a tool-calling agent loop over an OpenAI-compatible model.
--
--   local agent = require "agent"
--   local sessions = require "sessions"
--   local s <close> = sessions.new{}
--   local a = agent.new{ tools = { agent.python_tool(s) }, verbose = true }
--   local res = a:run("what's sin of pi?")
--   print(res.output)
--
-- Each step asks the model for the next message. A message with tool calls
-- has each call checked (known tool, arguments that are JSON and fit the
-- tool's schema) and run; the results go back as tool messages. A message
-- without tool calls is the final answer. The loop stops there or after
-- max_steps steps. A bad call is answered with an error message the model can
-- act on; nothing is raised for it.
--
-- A tool is a table: { name, description, parameters = <JSON schema of the
-- arguments object>, fn = function(args, call) -> string | table }. A table
-- result is sent as JSON; an error raised by fn is sent as "Error: ..."
-- (a Ctrl-C is not: it ends the run).

local json = require "sessions.json"
local llm = require "llm"
local schema = require "agent.schema"

local M = {}

M.DEFAULT_SYSTEM = "You are a helpful assistant."
M.DEFAULT_MAX_STEPS = 15

local Agent = { __name = "agent" }
Agent.__index = Agent

---------------------------------------------------------------------------
-- Tools.

local function check_tool(t, i)
  local where = ("tool %s"):format(t and t.name and ("%q"):format(t.name) or "#" .. i)
  if type(t) ~= "table" then error(("agent: tool #%d is not a table"):format(i), 3) end
  if type(t.name) ~= "string" or not t.name:match("^[%w_%-]+$") or #t.name > 64 then
    error(("agent: %s needs a name of 1 to 64 letters, digits, _ or -"):format(where), 3)
  end
  if type(t.fn) ~= "function" then
    error(("agent: %s needs fn = function(args) ... end"):format(where), 3)
  end
  if t.parameters ~= nil and (type(t.parameters) ~= "table" or t.parameters.type ~= "object") then
    error(("agent: %s: parameters must be a JSON schema with type = \"object\""):format(where), 3)
  end
end

--- Declare a tool; checks the fields and fills an empty schema.
function M.tool(t)
  check_tool(t, 1)
  t.parameters = t.parameters or { type = "object", properties = {} }
  t.description = t.description or ""
  return t
end

--- The built-in Python tool: runs code in a sesh session and gives the model
-- the session's invoke JSON (result, stdout, stderr, status). See
-- agent/python.lua for options.
function M.python_tool(session, opts)
  return require("agent.python").tool(session, opts)
end

--- The built-in Bash tool: runs commands in the session's shell and gives the
-- model LangChain's SessionsBashTool JSON (stdout, stderr, exitCode). See
-- agent/shell.lua for options.
function M.shell_tool(session, opts)
  return require("agent.shell").tool(session, opts)
end

--- The file tools of deep agents (ls, read_file, write_file, edit_file, glob,
-- grep) over the session's shell. See agent/files.lua for options.
function M.file_tools(session, opts)
  return require("agent.files").tools(session, opts)
end

--- The tools of an MCP server (a client from mcp.connect or mcp.spawn) as
-- agent tools. See agent/mcp.lua for options.
function M.mcp_tools(client, opts)
  return require("agent.mcp").tools(client, opts)
end

---------------------------------------------------------------------------
-- The trace (verbose), in the words of LangChain's AgentExecutor.

local function writer(opts)
  if not opts.verbose then return function() end end
  local out = opts.trace or io.stdout
  if type(out) == "function" then return out end
  return function(s) out:write(s); if out.flush then out:flush() end end
end

-- What the trace shows as a call's input: the one string argument when the
-- tool takes just one (the Python code), else the arguments as sent.
local function shown_input(tool, args, raw)
  if tool and type(args) == "table" then
    local props = tool.parameters and tool.parameters.properties or {}
    local only, count = nil, 0
    for k in pairs(props) do only, count = k, count + 1 end
    if count == 1 and type(args[only]) == "string" then return args[only] end
  end
  return raw
end

---------------------------------------------------------------------------
-- The loop.

--- An agent. Options:
--   llm        a client from llm.new, or options for llm.new (default: the environment)
--   tools      a list of tools
--   system     the system message (default "You are a helpful assistant.")
--   max_steps  model calls before giving up (default 15)
--   verbose    print the trace; trace = a file or function(text) to send it elsewhere
--   request    extra fields for every chat request (e.g. { temperature = 0 })
function M.new(opts)
  opts = opts or {}
  local client = opts.llm
  if client == nil or getmetatable(client) == nil and client.chat == nil then
    local err
    client, err = llm.new(client)
    if not client then error(err, 2) end
  end
  local tools, by_name = {}, {}
  for i, t in ipairs(opts.tools or {}) do
    check_tool(t, i)
    if by_name[t.name] then error(("agent: two tools are named %q"):format(t.name), 2) end
    tools[i], by_name[t.name] = t, t
  end
  local max_steps = opts.max_steps or M.DEFAULT_MAX_STEPS
  if math.type(max_steps) ~= "integer" or max_steps < 1 then
    error("agent: max_steps must be a positive integer", 2)
  end
  return setmetatable({
    llm = client,
    tools = tools,
    by_name = by_name,
    system = opts.system == nil and M.DEFAULT_SYSTEM or opts.system,
    max_steps = max_steps,
    write = writer(opts),
    request = opts.request or {},
  }, Agent)
end

local function tool_names(self)
  local names = {}
  for i, t in ipairs(self.tools) do names[i] = t.name end
  return #names > 0 and table.concat(names, ", ") or "(none)"
end

-- Check one call; returns the tool and decoded args, or nil and the error
-- text for the model.
function Agent:resolve(call)
  local fn = call["function"] or {}
  local tool = self.by_name[fn.name]
  if not tool then
    return nil, nil, ("Error: there is no tool named %q. The tools are: %s.")
                     :format(tostring(fn.name), tool_names(self))
  end
  local raw = fn.arguments or ""
  if raw:match("^%s*$") then raw = "{}" end
  local ok, args = pcall(json.decode, raw)
  if not ok then
    return tool, nil, ("Error: the arguments of %s are not valid JSON (%s). " ..
                       "Call it again with a JSON object that fits its schema.")
                      :format(tool.name, tostring(args))
  end
  local fits, why = schema.check(args, tool.parameters)
  if not fits then
    return tool, args, ("Error: the arguments of %s do not fit its schema: %s. " ..
                        "Call it again with arguments that fit."):format(tool.name, why)
  end
  return tool, args
end

-- A Ctrl-C: the transport's cancelled transfer, or the host's "interrupted!"
-- hook. It ends the run; it is not the model's business.
local function is_interrupt(e)
  if type(e) == "table" then return e.kind == "interrupted" end
  return type(e) == "string" and e:find("interrupted!$") ~= nil
end

-- Run a checked call; returns the text for the model and whether it failed.
local function invoke(tool, args, call)
  local ok, out = pcall(tool.fn, args, call)
  if not ok then
    if is_interrupt(out) then error(out, 0) end
    return "Error: " .. tostring(out), true
  end
  if out == nil then return "", false end
  if type(out) == "string" then return out, false end
  local enc_ok, text = pcall(json.encode, out)
  if not enc_ok then
    return "Error: the tool's result cannot be sent as JSON: " .. tostring(text), true
  end
  return text, false
end

--- Run the agent on one input (a string, or a list of messages to continue a
-- conversation). Returns
--   { output = final answer text or nil,
--     stopped = "answer" | "max_steps" | "length" | "content_filter" | ...,
--     messages = the whole transcript (system, user, assistant, tool, ...),
--     steps = { { tool, id, arguments (raw text), args, output, error = bool }, ... },
--     calls = number of model calls, usage = summed token counts }
-- An error of the model API is raised as it is; when it is a table, its
-- field `result` holds the run so far.
function Agent:run(input)
  local messages = {}
  if type(input) == "string" then
    if self.system and self.system ~= "" then
      messages[1] = { role = "system", content = self.system }
    end
    messages[#messages + 1] = { role = "user", content = input }
  elseif type(input) == "table" then
    for i, m in ipairs(input) do messages[i] = m end
  else
    error("agent: run expects a question (string) or a list of messages", 2)
  end

  local write = self.write
  local result = { messages = messages, steps = {}, calls = 0,
                   usage = { prompt_tokens = 0, completion_tokens = 0, total_tokens = 0 } }
  write("\n\n> Entering new AgentExecutor chain...\n")

  for _ = 1, self.max_steps do
    local req = {}
    for k, v in pairs(self.request) do req[k] = v end
    req.messages = messages
    if #self.tools > 0 then req.tools = self.tools end
    local ok, reply = pcall(self.llm.chat, self.llm, req)
    if not ok then
      -- The transcript so far goes with the error, for inspection.
      if type(reply) == "table" then reply.result = result end
      write(("\n\n> Chain failed: %s\n"):format(tostring(reply)))
      error(reply, 0)
    end
    result.calls = result.calls + 1
    for k, v in pairs(reply.usage or {}) do
      if type(v) == "number" and result.usage[k] then result.usage[k] = result.usage[k] + v end
    end
    local msg = reply.message
    messages[#messages + 1] = msg

    if not msg.tool_calls then
      result.output = msg.content or ""
      result.stopped = (reply.finish_reason == nil or reply.finish_reason == "stop")
                       and "answer" or reply.finish_reason
      write(result.output .. "\n\n> Finished chain.\n")
      return result
    end

    if msg.content and msg.content ~= "" then write(msg.content .. "\n") end
    for _, call in ipairs(msg.tool_calls) do
      local tool, args, err = self:resolve(call)
      local raw = call["function"].arguments
      local name = call["function"].name
      write(("\nInvoking: `%s` with `%s`\n\n\n"):format(tostring(name), shown_input(tool, args, raw)))
      local out, failed = err, true
      if not err then out, failed = invoke(tool, args, call) end
      write(out)
      messages[#messages + 1] = { role = "tool", tool_call_id = call.id, content = out }
      result.steps[#result.steps + 1] = { tool = name, id = call.id, arguments = raw,
                                          args = args, output = out, error = failed }
    end
  end

  result.stopped = "max_steps"
  write(("\n\n> Stopped after %d steps without a final answer.\n"):format(self.max_steps))
  return result
end

--- One call: agent.run{ input = "...", tools = ..., ... } -> result.
function M.run(opts)
  return M.new(opts):run(opts.input)
end

return M
