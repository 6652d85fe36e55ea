-- code_agent.lua — a coding agent on a local folder: it uploads the folder to a
-- sandboxed session, lets a model inspect, edit and run it there with the
-- shell and the file tools, then downloads what changed into an output folder
-- and prints a unified diff.
--
--   sesh scripts/code_agent.lua [options] DIR "TASK"
--     --out DIR            where changed files go (default: DIR.out, beside DIR)
--     --max-steps N        model calls before giving up (default 30)
--     --quiet              no trace: stdout is the diff alone (a patch for `patch -p1`)
--     --endpoint URL       the pool (default POOL_MANAGEMENT_ENDPOINT, else the local pool)
--     --token-file PATH    the pool's bearer token, with --endpoint
--
-- The folder lands in /mnt/data/NAME (NAME: its last component), which is
-- the shell's working directory when the model starts. Your folder itself is
-- never written: changed and new files go to --out (keeping their paths), the
-- diff to --out/changes.diff and to stdout, files the model deleted are named
-- on stderr. .git, __pycache__ and .pytest_cache are neither uploaded nor
-- compared. Any pool that runs shell commands will do (a Shell pool, or a
-- Python pool beside its Python).
-- The model is configured as for agent.lua (OPENAI_API_KEY, OPENAI_BASE_URL
-- or AZURE_OPENAI_*); with none set it says what to set and exits with status 1.

local llm = require "llm"
local agent = require "agent"
local sessions = require "sessions"
local core = require "sessions.core"

local SKIP = { [".git"] = true, ["__pycache__"] = true, [".pytest_cache"] = true }
local MAX_FILES, MAX_DEPTH = 5000, 32
local WORK = "/mnt/data/.sesh-code-agent"       -- the originals and the diff, in the session
-- Shell commands: API versions with them (the local pool's Shell sessions
-- serve no first-generation call).
local API_VERSION = "2025-02-02-preview"

local function usage(msg)
  io.stderr:write("code_agent.lua: ", msg, "\n",
    "usage: sesh scripts/code_agent.lua [--out DIR] [--max-steps N] [--quiet]\n",
    "       [--endpoint URL --token-file PATH] DIR \"TASK\"\n")
  os.exit(2)
end

local function say(fmt, ...) io.stderr:write("code_agent.lua: ", fmt:format(...), "\n") end

local o, positional = require("agent.cli").parse(arg, { max_steps = 30, out = false }, usage,
                                                "lets a model work on a folder in a sandbox")

-- The model first: without one there is nothing to do.
local client, err = llm.new{ defaults = { temperature = 0 } }
if not client then
  io.stderr:write("code_agent.lua: ", err, "\n")
  os.exit(1)
end

if #positional ~= 2 then usage("give a folder and a task (quote the task)") end
local dir, task = positional[1]:gsub("/+$", ""), positional[2]
if dir == "" then dir = "/" end
local st = core.stat(dir)
if not st or st.type ~= "directory" then usage("not a folder: " .. positional[1]) end
local name = dir:match("([^/]+)$")
if not name or name == "." or name == ".." then usage("name the folder by its own name, not " .. dir) end
o.out = o.out or (dir .. ".out")
local project = "/mnt/data/" .. name

---------------------------------------------------------------------------
-- The folder: its files (relative paths), folders and executables.

local function walk(rel, depth, found)
  if depth > MAX_DEPTH then usage("the folder nests deeper than " .. MAX_DEPTH .. " levels") end
  local path = rel == "" and dir or (dir .. "/" .. rel)
  local names, why = core.readdir(path)
  if not names then usage("cannot read the folder: " .. why) end
  table.sort(names)
  for _, n in ipairs(names) do
    local r = rel == "" and n or (rel .. "/" .. n)
    local s = not SKIP[n] and core.stat(dir .. "/" .. r)
    if s and s.type == "directory" then
      found.dirs[#found.dirs + 1] = r
      walk(r, depth + 1, found)
    elseif s and s.type == "file" then
      found.files[#found.files + 1] = r
      if s.mode & 73 ~= 0 then found.executables[#found.executables + 1] = r end   -- 0111
      if #found.files > MAX_FILES then usage("the folder holds more than " .. MAX_FILES .. " files") end
    end
  end
  return found
end

local tree = walk("", 1, { files = {}, dirs = {}, executables = {} })

-- Shell words in single quotes, for the few command lines written here.
local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Runs a program in the session; raises when it fails.
local function must(s, args, what)
  local r = s:shell(nil, { args = args })
  if r.exit_code ~= 0 then error(("%s failed (exit %d): %s"):format(what, r.exit_code, r.stderr), 0) end
  return r
end

-- Uploads the folder's files under `remote`, its empty folders and the
-- executables' modes too.
local function upload_tree(s, remote)
  sessions.parallel(tree.files, function(rel)
    s:upload{ name = remote .. "/" .. rel, file = dir .. "/" .. rel }
  end, { limit = 8 })
  local mk = { "mkdir", "-p", "--", remote }
  for _, d in ipairs(tree.dirs) do mk[#mk + 1] = remote .. "/" .. d end
  must(s, mk, "creating the folders")
  if #tree.executables > 0 then
    local x = { "chmod", "+x", "--" }
    for _, f in ipairs(tree.executables) do x[#x + 1] = remote .. "/" .. f end
    must(s, x, "marking the executables")
  end
end

---------------------------------------------------------------------------
-- The run.

local s <close> = sessions.new{ endpoint = o.endpoint, token_file = o.token_file,
                                api_version = API_VERSION }
upload_tree(s, project)
must(s, { "rm", "-rf", "--", WORK }, "clearing the work folder")
local r = s:shell("cd -- " .. quote(project))
if r.exit_code ~= 0 then error("cannot enter " .. project .. ": " .. r.stderr, 0) end

local system = table.concat({
  "You are a careful software engineer. The user's project is in " .. project ..
  ", which is your shell's working directory; it holds " .. #tree.files .. " files.",
  "Use the tools: ls, glob, grep and read_file to find your way, edit_file and write_file " ..
  "to change files, Bash to run the project's tests and other commands (cd, variables and " ..
  "functions stay between calls). Read a file before you edit it. Keep your changes to what " ..
  "the task needs, then run the tests again to check them.",
  "When you are done, answer with a short summary of what you changed and why.",
}, "\n")

local tools = { agent.shell_tool(s) }
for _, t in ipairs(agent.file_tools(s)) do tools[#tools + 1] = t end
local a = agent.new{ llm = client, tools = tools, system = system,
                     max_steps = o.max_steps, verbose = not o.quiet }
local res = a:run(task)

---------------------------------------------------------------------------
-- What changed: the originals go up once more, beside the project, and the
-- session's diff compares them.

upload_tree(s, WORK .. "/a")
must(s, { "ln", "-sfn", "--", project, WORK .. "/b" }, "linking the project")

local PRUNE = [[\( -name .git -o -name __pycache__ -o -name .pytest_cache \) -prune -o -type f -print0]]
local CHANGED = ([[
cd -- "$1" || exit 2
{ (cd a && find . %s); (cd b/ && find . %s); } | sort -zu |
while IFS= read -r -d '' f; do
  cmp -s "a/$f" "b/$f" || printf '%%s\0' "${f#./}"
done
]]):format(PRUNE, PRUNE)
local changed = must(s, { "bash", "--norc", "--noprofile", "-c", CHANGED, "changed", WORK },
                     "listing the changes").stdout

local DIFF = [[cd -- "$1" && diff -ruN -x .git -x __pycache__ -x .pytest_cache a b > changes.diff; [ $? -le 1 ] ]]
must(s, { "sh", "-c", DIFF, "diff", WORK }, "comparing the files")

local made, why = core.mkdir(o.out)
if not made then usage("cannot create the output folder: " .. why) end
local written, deleted = {}, {}
for rel in changed:gmatch("([^\0]+)\0") do
  local remote = name .. "/" .. rel
  local ok = pcall(s.file, s, remote)
  if ok then
    local sub = (o.out .. "/" .. rel):match("^(.*)/[^/]*$")
    assert(core.mkdir(sub))
    s:download(remote, o.out .. "/" .. rel)
    written[#written + 1] = rel
  else
    deleted[#deleted + 1] = rel
  end
end
s:download(".sesh-code-agent/changes.diff", o.out .. "/changes.diff")
local f = assert(io.open(o.out .. "/changes.diff", "rb"))
local diff = f:read("a")
f:close()

if not o.quiet then print("\n== the changes ==") end
io.stdout:write(diff)
if #written > 0 then say("%d file(s) changed or new, in %s: %s", #written, o.out, table.concat(written, ", ")) end
if #deleted > 0 then say("deleted in the session (kept in your folder): %s", table.concat(deleted, ", ")) end
if #written == 0 and #deleted == 0 then say("no file changed") end
if res.stopped ~= "answer" then
  say("no final answer (stopped: %s after %d model calls)", res.stopped, res.calls)
  os.exit(1, true)
end
