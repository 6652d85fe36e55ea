-- Shell sessions (pool-api.md section 9) against real pools of both kinds: a
-- Shell pool (--container-type Shell) and a Python pool, which runs shell
-- commands beside its Python. Exit codes as statuses, stdin, exact
-- arguments, a shell that keeps its state, timeouts that kill what the
-- command started, the output cap, asynchronous commands, processes that go
-- with their session, and the runner's shell replies as untrusted input.
local support = require "support.pool"
local util = require "support.util"

local V = "2025-02-02-preview"

-- The pids of the host's processes whose command line holds `marker`.
local function processes_with(marker)
  local found = {}
  for _, pid in ipairs(assert(require("sessions.core").readdir("/proc"))) do
    local cmd = pid:match("^%d+$") and util.read("/proc/" .. pid .. "/cmdline")
    if cmd and cmd:find(marker, 1, true) then found[#found + 1] = pid end
  end
  return found
end

local function shell_on(pool)
  local api = {}
  -- POST executions with `body` (a table), in session id; the decoded answer.
  function api.post(id, body, o)
    o = o or {}
    local res = pool:request{ method = "POST", path = "executions", identifier = id,
                              api_version = o.version or V, json = body, headers = o.headers }
    return res, res.json
  end
  -- A shell command line; asserts 200 and returns the execution resource.
  function api.run(id, command, extra)
    local body = { shellCommand = command }
    for k, v in pairs(extra or {}) do body[k] = v end
    local res, j = api.post(id, body)
    assert.are.equal(200, res.status, res.body)
    return j
  end
  return api
end

describe("a Shell pool", function()
  local pool, sh
  setup(function()
    pool = support.start{ args = { "--container-type", "Shell", "--timeout", "60" } }
    sh = shell_on(pool)
  end)
  teardown(function() pool:stop(); pool:cleanup() end)

  it("says its container type at start, in /health and in metadata, bash among the runtimes", function()
    assert.matches("container type Shell", pool.line, 1, true)
    local health = pool:request{ path = "health", query = {} }
    assert.are.equal("Shell", health.json.containerType)
    -- bwrap starts its sandboxes: the fork server holds Python, which they do not run
    assert.are.same({ state = "off", reason = "a Shell pool runs no Python" }, health.json.forkServer)
    local md = pool:request{ path = "metadata", query = { { "api-version", V } } }
    assert.are.equal(200, md.status, md.body)
    assert.are.equal("Shell", md.json.containerType)
    local bash = support.sh("bash -c 'printf %s \"${BASH_VERSINFO[0]}.${BASH_VERSINFO[1]}.${BASH_VERSINFO[2]}\"'")
    assert.same({ name = "bash", version = bash }, md.json.runtimes[1])
    assert.are.equal("python", md.json.runtimes[2].name)
    assert.is_nil(md.json.jupyterKernel)
  end)

  it("answers the exit code as the status: 0, 1 and 127", function()
    local ok = sh.run("codes", "echo hi")
    assert.are.equal("0", ok.status)
    assert.same({ stdout = "hi\n", stderr = "", executionTimeInMilliseconds = ok.result.executionTimeInMilliseconds },
                ok.result)
    assert.are.equal("Synchronous", ok.executionType)
    assert.are.equal("codes", ok.identifier)
    assert.is_string(ok.id)
    assert.is_nil(ok.error)
    local one = sh.run("codes", "echo oops >&2; false")
    assert.are.equal("1", one.status)
    assert.are.equal("oops\n", one.result.stderr)
    local missing = sh.run("codes", "no-such-command-here")
    assert.are.equal("127", missing.status)
    assert.matches("no%-such%-command%-here: command not found", missing.result.stderr)
    assert.are.equal("3", sh.run("codes", "(exit 3)").status)
  end)

  it("takes LangChain's body, {\"shellCommand\": ...} alone, and answers what it reads", function()
    local res = pool:request{ method = "POST", path = "executions", identifier = "lc-shape",
                              api_version = V, body = '{"shellCommand": "echo from langchain"}',
                              headers = { ["Content-Type"] = "application/json" } }
    assert.are.equal(200, res.status, res.body)
    assert.are.equal("0", res.json.status)
    assert.are.equal("from langchain\n", res.json.result.stdout)
  end)

  it("decodes a base64 command line, and names the execution as its operation-id says", function()
    local b64 = require("sessions.core").b64encode("echo 'from base64'")
    local res, j = sh.post("b64-cmd", { shellCommand = b64, codeInputType = "InlineBase64" },
                           { headers = { ["operation-id"] = "my-op.1" } })
    assert.are.equal(200, res.status, res.body)
    assert.are.equal("from base64\n", j.result.stdout)
    assert.are.equal("my-op.1", j.id)
    local bad = sh.post("b64-cmd", { shellCommand = "%%%", codeInputType = "InlineBase64" })
    assert.are.equal(400, bad.status)
    assert.matches("shellCommand is not valid base64", bad.json.error.message)
  end)

  it("feeds stdin, and gives end-of-file at once when none is sent", function()
    local j = sh.run("stdin", "read LINE; echo first:$LINE; cat", { stdin = "hello\nrest\n" })
    assert.are.equal("first:hello\nrest\n", j.result.stdout)
    local none = sh.run("stdin", "cat; read x; echo read=$?")
    assert.are.equal("0", none.status)
    assert.are.equal("read=1\n", none.result.stdout)
    -- the next command gets its own stdin, not what an earlier one left
    assert.are.equal("", sh.run("stdin", "cat").result.stdout)
  end)

  it("keeps arguments exact through execCommandAndArgs, with no shell between", function()
    local args = { "a b", "it's", '"q"', "line1\nline2", "$HOME", "*", "", "\\n", "é ✓" }
    local argv = { "python3", "-c", "import json, sys; print(json.dumps(sys.argv[1:]))" }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    local res, j = sh.post("argv", { execCommandAndArgs = argv })
    assert.are.equal(200, res.status, res.body)
    assert.are.equal("0", j.status, j.result.stderr)
    assert.same(args, require("cjson").decode(j.result.stdout))
    -- a program, not a builtin: cd is none, and the shell stays where it was
    local cd = select(2, sh.post("argv", { execCommandAndArgs = { "cd", "/tmp" } }))
    assert.are.equal("127", cd.status)
    assert.are.equal("/mnt/data\n", sh.run("argv", "pwd").result.stdout)
    -- a command that is not there
    local gone = select(2, sh.post("argv", { execCommandAndArgs = { "/no/such/program" } }))
    assert.are.equal("127", gone.status)
  end)

  it("keeps cd, variables, functions, options and $? from one command to the next", function()
    sh.run("state", "cd /tmp && mkdir -p work && cd work; export GREETING=hello; COUNT=2; " ..
                    "declare -a LIST=(x y); twice() { echo \"$1$1\"; }; shopt -s nullglob; false")
    local j = sh.run("state", "echo $?; pwd; echo $GREETING $COUNT ${LIST[1]}; twice ab; " ..
                              "sh -c 'echo child:$GREETING'; shopt -q nullglob && echo nullglob")
    assert.are.equal("1\n/tmp/work\nhello 2 y\nabab\nchild:hello\nnullglob\n", j.result.stdout)
  end)

  it("is a bash with job control off, no rc file, its uid, /mnt/data and read-only tools", function()
    local j = sh.run("environment", "case $- in *i*|*m*) echo interactive;; esac; echo ${BASH_VERSION%%.*}; " ..
                            "echo ${BASH_ENV:-none}; pwd; id -u; " ..
                            "for t in ls grep sed awk find tar gzip python3 diff; do " ..
                            "command -v $t >/dev/null || echo missing $t; done; " ..
                            "touch /usr/bin/x 2>/dev/null || echo read-only")
    local uid = tonumber(j.result.stdout:match("/mnt/data\n(%d+)\n"))
    assert.are.equal("5\nnone\n/mnt/data\n" .. uid .. "\nread-only\n", j.result.stdout, j.result.stderr)
    assert.is_true(uid ~= 0)
  end)

  it("kills every process a command started at its timeout, and keeps the shell", function()
    sh.run("timeout", "KEPT=yes; sleep 1000 & echo $! > old.pid")
    local j = sh.run("timeout", "setsid sh -c 'sleep 1001 & sleep 1002' & sleep 1003 & " ..
                                "echo started; sleep 1004", { timeoutInSeconds = 2 })
    assert.are.equal("-1", j.status)
    assert.are.equal("ExecutionTimeout", j.error.code)
    assert.are.equal("started\n", j.result.stdout)
    assert.matches("timed out after 2 s, so every process it started was killed", j.result.stderr)
    assert.matches("shell and its state are kept", j.result.stderr)
    local after = sh.run("timeout", "echo $KEPT; ps -eo args | grep -c '^sleep 100[1-4]'; " ..
                                    "kill -0 $(cat old.pid) && echo older-one-lives")
    assert.are.equal("yes\n0\nolder-one-lives\n", after.result.stdout)
  end)

  it("replaces a shell that will not stop (a loop of builtins), and says its state is gone", function()
    sh.run("loop", "KEPT=yes")
    local j = sh.run("loop", "while :; do :; done", { timeoutInSeconds = 2 })
    assert.are.equal("-1", j.status)
    assert.are.equal("ExecutionTimeout", j.error.code)
    assert.matches("its shell would not stop and was killed too", j.result.stderr)
    local after = sh.run("loop", "echo kept=$KEPT; pwd")
    assert.are.equal("0", after.status)
    assert.are.equal("kept=\n/mnt/data\n", after.result.stdout)
    assert.matches("this command ran in a new shell", after.result.stderr)
  end)

  it("ends the shell on exit, with its status, and starts a new one for the next command", function()
    sh.run("exits", "cd /tmp; X=1")
    local j = sh.run("exits", "echo bye; exit 7")
    assert.are.equal("7", j.status)
    assert.are.equal("bye\n", j.result.stdout)
    assert.matches("the command ended the session's shell %(exit status 7%)", j.result.stderr)
    local after = sh.run("exits", "echo x=$X; pwd")
    assert.are.equal("x=\n/mnt/data\n", after.result.stdout)
  end)

  it("goes on after a command closed the shell's own stdout, as a terminal would", function()
    sh.run("closed", "exec >&-")
    local j = sh.run("closed", "echo lost; echo here >&2")
    assert.are.equal("", j.result.stdout)
    assert.matches("Bad file descriptor", j.result.stderr)
    assert.matches("here", j.result.stderr)
    sh.run("closed", "exit")
    assert.are.equal("back\n", sh.run("closed", "echo back").result.stdout)
  end)

  it("cuts output beyond the cap and says so", function()
    local j = sh.run("capped", "head -c 100000 /dev/zero | tr '\\0' y; yes e | head -c 50000 >&2",
                     { outputStreamsMaxLength = 10 })
    assert.are.equal("yyyyyyyyyy\n[sesh-pool: stdout truncated at the output limit]", j.result.stdout)
    assert.are.equal("e\ne\ne\ne\ne\n[sesh-pool: stderr truncated at the output limit]", j.result.stderr)
    -- characters, not bytes; bytes that are not UTF-8 become U+FFFD
    local u = sh.run("capped", "printf 'é✓\\377ab'", { outputStreamsMaxLength = 4 })
    assert.are.equal("é✓\u{FFFD}a\n[sesh-pool: stdout truncated at the output limit]", u.result.stdout)
  end)

  it("runs asynchronously, answered by polling", function()
    local res, j = sh.post("async", { shellCommand = "sleep 1; echo late; exit 4",
                                      executionType = "Asynchronous" })
    assert.are.equal(200, res.status, res.body)
    assert.are.equal("Running", j.status)
    local id = res.headers["operation-id"]
    assert.are.equal(j.id, id)
    local done = util.wait(function()
      local g = pool:request{ path = "executions/" .. id, identifier = "async", api_version = V }
      assert.are.equal(200, g.status, g.body)
      return g.json.status ~= "Running" and g.json
    end, 30)
    assert.are.equal("4", done.status)
    assert.are.equal("late\n", done.result.stdout)
    assert.are.equal("Asynchronous", done.executionType)
  end)

  it("kills a daemon a command left behind when its session is deleted", function()
    local marker = "sesh-daemon-" .. require("sessions.core").uuid4()
    local j = sh.run("daemon", ("nohup sh -c 'while :; do date > tick; sleep 0.05; done' %s " ..
                                ">/dev/null 2>&1 & echo started"):format(marker))
    assert.are.equal("started\n", j.result.stdout)
    assert.is_truthy(util.wait(function() return #processes_with(marker) > 0 end, 10),
                     "the daemon never ran")
    local del = pool:request{ method = "DELETE", path = "session", identifier = "daemon", api_version = V }
    assert.are.equal(204, del.status, del.body)
    assert.is_truthy(util.wait(function() return #processes_with(marker) == 0 end, 10),
                     "the daemon outlived its session")
  end)

  it("refuses Python with a 400 saying that it runs shell commands", function()
    local res, j = sh.post("python", { code = "6 * 7", timeoutInSeconds = 10 })
    assert.are.equal(400, res.status)
    assert.are.equal("code", j.error.target)
    assert.matches("this pool runs shell commands", j.error.message)
    local gen1 = pool:execute("6 * 7", { identifier = "python" })
    assert.are.equal(400, gen1.status)
    assert.are.equal("UnsupportedApiVersion", gen1.json.error.code)
    assert.matches("runs Shell sessions (sesh-pool --container-type Shell), which the first API generation",
                   gen1.json.error.message, 1, true)
    local files1 = pool:request{ path = "files", identifier = "python" }
    assert.are.equal(400, files1.status)
  end)

  it("wants exactly one of shellCommand and execCommandAndArgs", function()
    for _, body in ipairs{ { shellCommand = "ls", execCommandAndArgs = { "ls" } }, { stdin = "x" } } do
      local res, j = sh.post("both", body)
      assert.are.equal(400, res.status)
      assert.matches("shellCommand", j.error.message)
      assert.matches("execCommandAndArgs", j.error.message)
    end
    local bad = { { execCommandAndArgs = {} }, { execCommandAndArgs = { "ls", 1 } },
                  { shellCommand = 5 }, { shellCommand = "ls", stdin = 5 } }
    for _, body in ipairs(bad) do
      local res = sh.post("both", body)
      assert.are.equal(400, res.status, res.body)
    end
    local old = sh.post("both", { shellCommand = "ls" }, { version = "2024-10-02-preview" })
    assert.are.equal(404, old.status)
    assert.matches("needs api%-version 2025%-02%-02%-preview or later", old.json.error.message)
  end)

  it("serves every file operation for its sessions", function()
    sh.run("files", "mkdir -p sub && printf 'from shell' > sub/s.txt")
    local up = pool:request{ method = "POST", path = "files", identifier = "files", api_version = V,
                             query = { { "identifier", "files" }, { "api-version", V }, { "path", "sub" } },
                             multipart = { { name = "file", filename = "u.txt", data = "uploaded" } } }
    assert.are.equal(200, up.status, up.body)
    local list = pool:request{ path = "files", query = { { "identifier", "files" }, { "api-version", V },
                                                         { "path", "sub" } } }
    local names = {}
    for _, f in ipairs(list.json.value) do names[#names + 1] = f.name end
    table.sort(names)
    assert.same({ "s.txt", "u.txt" }, names)
    local down = pool:request{ path = "files/s.txt/content",
                               query = { { "identifier", "files" }, { "api-version", V }, { "path", "sub" } } }
    assert.are.equal("from shell", down.body)
    assert.are.equal("uploaded", sh.run("files", "cat sub/u.txt").result.stdout)
    local del = pool:request{ method = "DELETE", path = "files/u.txt",
                              query = { { "identifier", "files" }, { "api-version", V }, { "path", "sub" } } }
    assert.are.equal(204, del.status)
    assert.are.equal("s.txt\n", sh.run("files", "ls sub").result.stdout)
  end)
end)

describe("a Python pool's shell commands", function()
  local pool, sh
  setup(function()
    pool = support.start{ args = { "--timeout", "60" } }
    sh = shell_on(pool)
  end)
  teardown(function() pool:stop(); pool:cleanup() end)

  local function python(id, code)
    local res, j = sh.post(id, { code = code, timeoutInSeconds = 30 })
    assert.are.equal(200, res.status, res.body)
    return j
  end

  it("run in the session's sandbox beside its Python, on the files it wrote", function()
    python("beside", "open('py.txt', 'w').write('from python\\n')\nanswer = 42")
    local j = sh.run("beside", "cat py.txt; echo from shell > sh.txt; pwd")
    assert.are.equal("0", j.status, j.result.stderr)
    assert.are.equal("from python\n/mnt/data\n", j.result.stdout)
    local p = python("beside", "print(open('sh.txt').read().strip(), answer)")
    assert.are.equal("from shell 42\n", p.result.stdout)
    assert.matches("PythonLTS", pool:request{ path = "health", query = {} }.json.containerType)
  end)

  it("keep their shell while Python cells come and go, and an interrupted cell spares it", function()
    sh.run("cells", "cd /tmp; SHELL_STATE=kept; sleep 1000 & echo $! > /mnt/data/bg.pid")
    local res, j = sh.post("cells", { code = "import time\nwhile True: time.sleep(0.1)", timeoutInSeconds = 2 })
    assert.are.equal(200, res.status)
    assert.matches("timed out", j.result.stderr)
    local after = sh.run("cells", "echo $SHELL_STATE; pwd; kill -0 $(cat /mnt/data/bg.pid) && echo alive")
    assert.are.equal("kept\n/tmp\nalive\n", after.result.stdout)
  end)

  it("start a new shell when Python killed the old one, and say so", function()
    sh.run("killed", "X=1; echo $$ > shell.pid")
    python("killed", "import os, signal\nos.kill(int(open('shell.pid').read()), signal.SIGKILL)")
    local j = sh.run("killed", "echo x=$X")
    assert.are.equal("x=\n", j.result.stdout)
    assert.matches("this command ran in a new shell", j.result.stderr)
  end)

  it("refuse a shell command in an API version before 2025-02-02-preview, on either route", function()
    local res = sh.post("older", { shellCommand = "ls" }, { version = "2024-10-02-preview" })
    assert.are.equal(404, res.status)
    assert.are.equal("OperationNotSupported", res.json.error.code)
    local gen1 = pool:request{ method = "POST", path = "code/execute", identifier = "older",
                               json = { properties = { shellCommand = "ls" } } }
    assert.are.equal(404, gen1.status)
    assert.matches("at POST executions", gen1.json.error.message)
  end)

  it("refuse Python and a command in one request", function()
    local res, j = sh.post("mixed", { code = "1", shellCommand = "ls" })
    assert.are.equal(400, res.status)
    assert.matches("not both", j.error.message)
  end)

  it("say in metadata that bash is there too", function()
    local md = pool:request{ path = "metadata", query = { { "api-version", V } } }
    assert.are.equal("PythonLTS", md.json.containerType)
    assert.are.equal("python", md.json.runtimes[1].name)
    assert.are.equal("bash", md.json.runtimes[2].name)
    assert.are.equal("IPython", md.json.jupyterKernel.name)
  end)

  -- The runner's shell replies are untrusted: code in the session can make
  -- the runner say anything (here it swaps the runner's own Shell.run; a
  -- forked runner's objects are frozen, out of gc.get_objects()' sight
  -- until unfrozen).
  local FORGE = [[
import gc
gc.unfreeze()
Shell = next(o for o in gc.get_objects()
             if isinstance(o, type) and o.__name__ == 'Shell' and 'sweep' in vars(o))
def forged(self, request):
    reply = {"exit_code": 0, "stdout": "forged\n", "stderr": "", "ms": 0,
             "stdout_truncated": False, "stderr_truncated": False,
             "new_shell": False, "shell_ended": False}
    reply.update(%s)
    return reply
Shell.run = forged
]]

  local function forged(id, fields)
    python(id, FORGE:format(fields))
    return sh.run(id, "echo real")
  end

  it("lose the interpreter on a shell reply of the wrong shape, naming the rule", function()
    local cases = {
      { "{'exit_code': 300}", "no 'exit_code' from 0 to 255 or null" },
      { "{'exit_code': 'zero'}", "no 'exit_code' from 0 to 255 or null" },
      { "{'new_shell': 1}", "no boolean 'new_shell'" },
      { "{'extra': 1}", "unknown fields" },
      { "{'stdout': 'x' * 200000}", "over the shell reply's limit of 114688 bytes" },
    }
    for i, case in ipairs(cases) do
      local j = forged("forged-" .. i, case[1])
      assert.are.equal("-1", j.status, case[1])
      assert.are.equal("SessionStateLost", j.error.code, case[1])
      assert.matches(case[2], j.result.stderr, 1, true)
      -- a new sandbox, with the real runner
      assert.are.equal("real\n", sh.run("forged-" .. i, "echo real").result.stdout)
    end
  end)

  it("cap a forged reply's streams at the request's own cap", function()
    local j = forged("forged-cap", "{'stdout': 'y' * 5000}")
    assert.are.equal("0", j.status)
    assert.are.equal(string.rep("y", 4096) .. "\n[sesh-pool: stdout truncated at the output limit]",
                     j.result.stdout)
  end)
end)

describe("a Shell pool that is not root", function()
  it("runs commands, with their stdin, in a shell that keeps its state", function()
    local pool = support.start{ user = 65534, args = { "--container-type", "Shell" } }
    local sh = shell_on(pool)
    local ok, err = pcall(function()
      sh.run("user", "cd /tmp; Y=2")
      local j = sh.run("user", "read L; echo $L $Y; pwd; id -u", { stdin = "in" })
      assert.are.equal("in 2\n/tmp\n65534\n", j.result.stdout, j.result.stderr)
    end)
    pool:stop(); pool:cleanup()
    assert(ok, err)
  end)
end)

describe("a Shell pool's cooldown", function()
  it("ends a session's daemon with the session", function()
    local pool = support.start{ args = { "--container-type", "Shell", "--cooldown", "2" } }
    local sh = shell_on(pool)
    local marker = "sesh-idle-" .. require("sessions.core").uuid4()
    local ok, err = pcall(function()
      sh.run("idle", ("nohup sh -c 'while :; do sleep 0.05; done' %s >/dev/null 2>&1 &"):format(marker))
      assert.is_truthy(util.wait(function() return #processes_with(marker) > 0 end, 10))
      assert.is_truthy(util.wait(function() return #processes_with(marker) == 0 end, 20),
                       "the daemon outlived its idle session")
      assert.matches("idle for 2 s, removed", pool:log())
    end)
    pool:stop(); pool:cleanup()
    assert(ok, err)
  end)
end)
