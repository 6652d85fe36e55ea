-- agent.lua — the seed's agent: a model that decides to run Python in a
-- sandboxed session to answer a question.
--
--   sesh scripts/agent.lua [options] ["question"]
--     --max-steps N        model calls before giving up (default 15)
--     --quiet              print only the answer, not the trace
--     --endpoint URL       the pool (default POOL_MANAGEMENT_ENDPOINT, else the local pool)
--     --token-file PATH    the pool's bearer token, with --endpoint
--
-- The model comes from the environment: OPENAI_API_KEY (OpenAI),
-- OPENAI_BASE_URL (a compatible server such as Ollama), or AZURE_OPENAI_*
-- (Azure OpenAI); see lua/llm.lua. With none set it says what to set and
-- exits with status 1.

local llm = require "llm"
local agent = require "agent"
local sessions = require "sessions"

local QUESTION = "what's sin of pi . if it's negative generate a random number between 0 and 5. " ..
                 "if it's positive between 5 and 10."

local function usage(msg)
  io.stderr:write("agent.lua: ", msg, "\n",
    "usage: sesh scripts/agent.lua [--max-steps N] [--quiet] ",
    "[--endpoint URL --token-file PATH] [\"question\"]\n")
  os.exit(2)
end

local o = { max_steps = 15 }
local argv, i = arg or {}, 1
while i <= #argv do
  local a = argv[i]
  local function value() i = i + 1; return argv[i] or usage(a .. " needs a value") end
  if a == "--max-steps" then
    o.max_steps = math.tointeger(tonumber(value()))
    if not o.max_steps or o.max_steps < 1 then usage("--max-steps needs a positive integer") end
  elseif a == "--quiet" or a == "-q" then o.quiet = true
  elseif a == "--endpoint" then o.endpoint = value()
  elseif a == "--token-file" then o.token_file = value()
  elseif a == "-h" or a == "--help" then usage("asks a model, which runs Python in a session")
  elseif a:sub(1, 2) == "--" then usage(("unknown option %q"):format(a))
  elseif o.question then usage("give the question as one argument (quote it)")
  else o.question = a end
  i = i + 1
end

local client, err = llm.new{ defaults = { temperature = 0 } }
if not client then
  io.stderr:write("agent.lua: ", err, "\n")
  os.exit(1)
end

local s <close> = sessions.new{ endpoint = o.endpoint, token_file = o.token_file }
local a = agent.new{
  llm = client,
  tools = { agent.python_tool(s) },
  max_steps = o.max_steps,
  verbose = not o.quiet,
}
-- A failure of the model's API or of the session is said in one sentence
-- (what failed, where, what to check), not with a traceback.
local ran, res = pcall(a.run, a, o.question or QUESTION)
if not ran then
  if not require("sessions.errors").is(res) then error(res, 0) end
  io.stderr:write("agent.lua: ", tostring(res), "\n")
  os.exit(1, true)
end

if res.stopped ~= "answer" then
  io.stderr:write(("agent.lua: no final answer (stopped: %s after %d model calls)\n")
                  :format(res.stopped, res.calls))
  os.exit(1, true)
end
if o.quiet then print(res.output) end
