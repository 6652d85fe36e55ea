-- agent.python: the built-in Python tool. It runs the model's code in a sesh
-- session and gives the model the session's invoke JSON, as LangChain's
-- SessionsPythonREPLTool does:
--
--   {"result": ..., "stdout": "...", "stderr": "...", "status": "Success"}
--
-- with any image's base64 kept out of the model's context.
--
--   python.tool(session, {
--     name = "Python_REPL",          -- the name the model sees
--     description = "...",           -- what the model is told about the tool
--     on_image = function(image, call) -> path | nil,
--                                     -- each image a cell draws ({type, format,
--                                     -- base64_data}); a returned path is shown
--                                     -- to the model as result.saved_as
--     max_chars = 20000,             -- longer stdout, stderr or result text is
--                                     -- cut in the middle (false: never)
--   })

local sessions = require "sessions"

local python = {}

python.NAME = "Python_REPL"
python.MAX_CHARS = 20000
python.DESCRIPTION = table.concat({
  "A Python shell in a sandboxed session that keeps its state between calls.",
  "Use it to run Python code for calculations, data analysis and plots.",
  "Input is Python code; the value of its last expression is returned, as in a notebook.",
  "Returns JSON with result, stdout, stderr and status (Success or Failure).",
  "Files live in /mnt/data. numpy, pandas, matplotlib and scikit-learn are installed.",
}, " ")

python.SCHEMA = {
  type = "object",
  properties = {
    python_code = { type = "string", description = "The Python code to run." },
  },
  required = { "python_code" },
}

--- Strip what models wrap code in: leading blanks, backticks and a "python"
-- word; trailing blanks and backticks. sessions.sanitize (LangChain's rules),
-- keeping a name that merely starts with "python" (python_var = 1).
function python.sanitize(code)
  return sessions.sanitize(code, { whole_word = true })
end

-- Keep a huge output (a whole DataFrame printed) from flooding the model's
-- context: the head and the tail, and how much was left out.
local function clip(text, max)
  if type(text) ~= "string" or max == false or #text <= max then return text end
  local keep = max // 2
  -- cut on UTF-8 character boundaries
  local head_end = keep
  while head_end > 0 and (text:byte(head_end + 1) or 0) & 0xC0 == 0x80 do head_end = head_end - 1 end
  local tail_start = #text - keep + 1
  while tail_start <= #text and text:byte(tail_start) & 0xC0 == 0x80 do tail_start = tail_start + 1 end
  return ("%s\n... [%d characters left out] ...\n%s"):format(
    text:sub(1, head_end), tail_start - head_end - 1, text:sub(tail_start))
end
python.clip = clip

function python.tool(session, opts)
  opts = opts or {}
  if type(session) ~= "table" and type(session) ~= "userdata" then
    error("agent.python_tool: expected a session (sessions.new{...})", 2)
  end
  local on_image = opts.on_image
  local max_chars = opts.max_chars or python.MAX_CHARS
  return {
    name = opts.name or python.NAME,
    description = opts.description or python.DESCRIPTION,
    parameters = python.SCHEMA,
    fn = function(args, call)
      local r = session:execute(python.sanitize(args.python_code), { sanitize = false })
      r.stdout = clip(r.stdout, max_chars)
      r.stderr = clip(r.stderr, max_chars)
      if type(r.result) == "string" then r.result = clip(r.result, max_chars) end
      if on_image and sessions.is_image(r.result) then
        local saved = on_image(r.result, call)
        if type(saved) == "string" then
          -- The model learns where its figure went, instead of its bytes.
          r.result = sessions.json.object({ "type", "format", "saved_as" },
            { type = r.result.type, format = r.result.format, saved_as = saved })
        end
      end
      return sessions.to_langchain(r)
    end,
  }
end

return python
