-- agent.shell: the built-in Bash tool. It runs the model's command in the
-- session's shell (cd, variables and functions stay between calls) and gives
-- the model LangChain's SessionsBashTool output:
--
--   {"stdout": "...", "stderr": "...", "exitCode": 0}
--
--   shell.tool(session, {
--     name = "Bash",                 -- the name the model sees
--     description = "...",           -- LangChain's, unless given
--     timeout = 180,                 -- seconds a command may take (default: the pool's)
--     max_chars = 20000,             -- longer stdout or stderr is cut in the middle
--                                     -- (false: never)
--   })

local sessions = require "sessions"
local clip = require("agent.python").clip

local shell = {}

shell.NAME = "Bash"
shell.MAX_CHARS = 20000
-- SessionsBashTool's own words, to the trailing space.
shell.DESCRIPTION = "A Bash shell. Use this to execute bash commands " ..
  "when you need to perform file operations, run scripts, " ..
  "or execute system commands. " ..
  "Input should be a valid bash command. " ..
  "Returns a JSON object with the stdout, stderr, and exit code. "

shell.SCHEMA = {
  type = "object",
  properties = {
    bash_command = { type = "string", description = "The bash command to run." },
  },
  required = { "bash_command" },
}

--- Strip what models wrap commands in: leading blanks, backticks and a
-- "bash" or "sh" word; trailing blanks and backticks. LangChain's rules
-- (sessions.sanitize), keeping a command that merely starts with those
-- letters (shred, shasum, bashbug).
function shell.sanitize(command)
  return sessions.sanitize(command, { shell = true, whole_word = true })
end

function shell.tool(session, opts)
  opts = opts or {}
  if type(session) ~= "table" and type(session) ~= "userdata" then
    error("agent.shell_tool: expected a session (sessions.new{...})", 2)
  end
  local max_chars = opts.max_chars or shell.MAX_CHARS
  return {
    name = opts.name or shell.NAME,
    description = opts.description or shell.DESCRIPTION,
    parameters = shell.SCHEMA,
    fn = function(args)
      local r = session:shell(shell.sanitize(args.bash_command), { timeout = opts.timeout })
      -- The answer as LangChain reads it, its streams clipped for the model.
      local raw = r.raw or {}
      local result = type(raw.result) == "table" and raw.result or {}
      return sessions.to_langchain_shell{ raw = { status = raw.status, result = {
        stdout = clip(result.stdout, max_chars), stderr = clip(result.stderr, max_chars) } } }
    end,
  }
end

return shell
