-- data_analyst.lua — an agent that answers a question about a CSV file: it
-- uploads the data to a sandboxed session, explores it with pandas, draws
-- charts (saved on this machine) and answers.
--
--   sesh scripts/data_analyst.lua [options] [data.csv] ["question"]
--   sesh scripts/data_analyst.lua [options] "question about the iris data"
--     --out DIR            where charts and the answer go (env SESH_OUTPUT_DIR;
--                          default ./analysis)
--     --max-steps N        model calls before giving up (default 20)
--     --quiet              print only the answer, not the trace
--     --endpoint URL       the pool (default POOL_MANAGEMENT_ENDPOINT, else the local pool)
--     --token-file PATH    the pool's bearer token, with --endpoint
--
-- Without a file it analyses scripts/data/iris.csv. It writes DIR/answer.md
-- (question, answer, charts) and DIR/chart-N.png; files the model saved in
-- the session (plt.savefig, to_csv, ...) are downloaded to DIR too.
-- The model is configured as for agent.lua (OPENAI_API_KEY, OPENAI_BASE_URL
-- or AZURE_OPENAI_*); with none set it says what to set and exits with status 1.

local llm = require "llm"
local agent = require "agent"
local sessions = require "sessions"

local DEFAULT_QUESTION = "Which species is the easiest to tell apart from the others, and by " ..
  "which measurements? Show it in a chart."

local function usage(msg)
  io.stderr:write("data_analyst.lua: ", msg, "\n",
    "usage: sesh scripts/data_analyst.lua [--out DIR] [--max-steps N] [--quiet]\n",
    "       [--endpoint URL --token-file PATH] [data.csv] [\"question\"]\n")
  os.exit(2)
end

local function script_dir()
  local src = debug.getinfo(1, "S").source
  return src:sub(1, 1) == "@" and (src:sub(2):match("^(.*)/[^/]*$") or ".") or "."
end

local o, positional = require("agent.cli").parse(arg,
  { max_steps = 20, out = os.getenv("SESH_OUTPUT_DIR") or "analysis" }, usage,
  "answers a question about a CSV file")
if #positional > 2 then usage("give at most a file and a question (quote the question)") end
local function readable(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end
-- One argument that names no file and does not look like one is the question.
if #positional == 1 and not readable(positional[1]) and not positional[1]:find("%.%w+$") then
  table.insert(positional, 1, script_dir() .. "/data/iris.csv")
end
local csv = positional[1] or (script_dir() .. "/data/iris.csv")
local question = positional[2] or DEFAULT_QUESTION

-- The model first: without one there is nothing to do.
local client, err = llm.new{ defaults = { temperature = 0 } }
if not client then
  io.stderr:write("data_analyst.lua: ", err, "\n")
  os.exit(1)
end

local f, ferr = io.open(csv, "rb")
if not f then usage("cannot read the data: " .. tostring(ferr)) end
local head = {}
for line in f:lines() do
  head[#head + 1] = line
  if #head == 6 then break end
end
f:close()
local name = csv:match("([^/]+)$")

local made, why = require("sessions.core").mkdir(o.out)
if not made then usage("cannot create the output directory: " .. why) end

local s <close> = sessions.new{ endpoint = o.endpoint, token_file = o.token_file }
s:upload{ name = name, file = csv }
local before = {}
for _, fi in ipairs(s:files()) do before[fi.name] = true end

local charts = {}
local python = agent.python_tool(s, {
  on_image = function(image)
    local file = ("chart-%d.%s"):format(#charts + 1, image.format or "png")
    sessions.save_image(image, o.out .. "/" .. file)
    charts[#charts + 1] = file
    return file
  end,
})

local system = table.concat({
  "You are a careful data analyst. The user's data is the CSV file /mnt/data/" .. name ..
  "; its first lines are:",
  "",
  table.concat(head, "\n"),
  "",
  "Use the Python_REPL tool: load the file with pandas, look at its shape, types and " ..
  "summary statistics, then compute what the question needs. Keep each call short; " ..
  "state persists between calls.",
  "Draw charts with matplotlib; a cell that leaves a figure open (or calls plt.show()) " ..
  "returns it as an image, which is saved for the user (result.saved_as names the file). " ..
  "Draw one figure per call.",
  "When you are done, answer in a few sentences with the numbers you found, and name the " ..
  "chart files that show them.",
}, "\n")

local a = agent.new{
  llm = client, tools = { python }, system = system,
  max_steps = o.max_steps, verbose = not o.quiet,
}
-- A failure of the model's API or of the session is said in one sentence
-- (what failed, where, what to check), not with a traceback.
local ran, res = pcall(a.run, a, question)
if not ran then
  if not require("sessions.errors").is(res) then error(res, 0) end
  io.stderr:write("data_analyst.lua: ", tostring(res), "\n")
  os.exit(1, true)
end

-- Files the model wrote in the session come home too.
local downloaded = {}
for _, fi in ipairs(s:files()) do
  if not before[fi.name] and fi.type == "file" and not fi.name:find("/") then
    local ok, derr = pcall(s.download, s, fi.name, o.out .. "/" .. fi.name)
    if ok then
      downloaded[#downloaded + 1] = fi.name
    else
      io.stderr:write(("data_analyst.lua: could not download %s: %s\n"):format(fi.name, tostring(derr)))
    end
  end
end

local md = { "# " .. question, "", ("Data: `%s`"):format(name), "" }
md[#md + 1] = res.output or ("*No final answer: the agent stopped (%s) after %d model calls.*")
                             :format(res.stopped, res.calls)
md[#md + 1] = ""
for _, c in ipairs(charts) do md[#md + 1] = ("![%s](%s)"):format(c, c); md[#md + 1] = "" end
if #downloaded > 0 then
  md[#md + 1] = "Files from the session: " .. table.concat(downloaded, ", ")
  md[#md + 1] = ""
end
local out = assert(io.open(o.out .. "/answer.md", "w"))
out:write(table.concat(md, "\n"))
out:close()

if o.quiet and res.output then print(res.output) end
print(("\ndata_analyst: %d chart(s) and the answer in %s/answer.md"):format(#charts, o.out))
if res.stopped ~= "answer" then
  io.stderr:write(("data_analyst.lua: no final answer (stopped: %s after %d model calls)\n")
                  :format(res.stopped, res.calls))
  os.exit(1, true)
end
