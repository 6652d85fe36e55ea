-- agent.mcp: an MCP server's tools as agent tools (agent.mcp_tools).
--
--   local c = mcp.spawn{ command = "sesh-pool", args = { "--mcp-stdio" } }
--   local a = agent.new{ tools = agent.mcp_tools(c, {
--     prefix = "pool_",                 -- put before each name (default none)
--     only = { "launchShell", ... },    -- the tools to take (default all)
--     on_image = function(block, call) -> path | nil,
--                                       -- each image block ({ type, data, mimeType });
--                                       -- a returned path is shown to the model
--     max_chars = 20000,                -- a longer text block is cut in the middle (false: never)
--   }) }
--
-- The model sees each tool's name (letters, digits, _ and - only: others
-- become _), description and input schema. What a call gives the model is the
-- result's text blocks (an MCP server sends its structured content there
-- too), or the structured content as JSON when there is no text; images are
-- named, not sent. A result with isError is raised, so the agent answers the
-- model "Error: ..." and records the step as failed.

local json = require "sessions.json"
local python = require "agent.python"

local M = {}

local function agent_name(name, prefix)
  local n = (prefix or "") .. name:gsub("[^%w_%-]", "_")
  return n:sub(1, 64)
end

-- The input schema as a tool's parameters: an object schema; "$schema" (the
-- SDKs write one) means nothing to a model API and some refuse it.
local function parameters(schema)
  local p = {}
  for k, v in pairs(type(schema) == "table" and schema or {}) do
    if k ~= "$schema" then p[k] = v end
  end
  p.type = "object"
  p.properties = p.properties or {}
  return p
end

local function describe_image(block, i, call, on_image)
  local saved = on_image and on_image(block, call)
  if saved then return ("[image %d (%s) saved as %s]"):format(i, tostring(block.mimeType), tostring(saved)) end
  return ("[image %d: %s, %d bytes of base64 not shown]"):format(i, tostring(block.mimeType),
                                                               #tostring(block.data or ""))
end

-- What the model reads of a result: each text block (cut to max_chars),
-- then what stands for images and resources.
local function output(result, call, opts)
  local max = opts.max_chars == nil and python.MAX_CHARS or opts.max_chars
  local parts, images = {}, 0
  for _, block in ipairs(type(result.content) == "table" and result.content or {}) do
    if block.type == "text" then
      parts[#parts + 1] = python.clip(tostring(block.text), max)
    elseif block.type == "image" then
      images = images + 1
      parts[#parts + 1] = describe_image(block, images, call, opts.on_image)
    elseif block.type == "resource_link" then
      parts[#parts + 1] = ("[resource %s]"):format(tostring(block.uri))
    elseif block.type == "resource" and type(block.resource) == "table" then
      parts[#parts + 1] = type(block.resource.text) == "string" and python.clip(block.resource.text, max)
                          or ("[resource %s]"):format(tostring(block.resource.uri))
    else
      parts[#parts + 1] = ("[%s content not shown]"):format(tostring(block.type))
    end
  end
  if #parts == 0 and result.structuredContent ~= nil then
    parts[1] = python.clip(json.encode(result.structuredContent), max)
  end
  return table.concat(parts, "\n")
end

function M.tools(client, opts)
  opts = opts or {}
  if type(client) ~= "table" or type(client.tools) ~= "function" then
    error("agent.mcp_tools: expected an MCP client (mcp.connect{...} or mcp.spawn{...})", 3)
  end
  local only
  if opts.only then
    only = {}
    for _, n in ipairs(opts.only) do only[n] = true end
  end
  local list = {}
  for _, t in ipairs(client:tools()) do
    if type(t.name) == "string" and (not only or only[t.name]) then
      local mcp_name = t.name
      list[#list + 1] = {
        name = agent_name(mcp_name, opts.prefix),
        description = type(t.description) == "string" and t.description or (t.title or ""),
        parameters = parameters(t.inputSchema),
        mcp = { client = client, name = mcp_name, tool = t },
        fn = function(args, call)
          local r = client:call(mcp_name, args)
          local text = output(r, call, opts)
          if r.isError then error(text ~= "" and text or "the tool failed", 0) end
          return text
        end,
      }
    end
  end
  return list
end

return M
