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

local o, words = require("agent.cli").parse(arg, { max_steps = 15 }, usage,
                                           "asks a model, which runs Python in a session")
if #words > 1 then usage("give the question as one argument (quote it)") end
o.question = words[1]

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
