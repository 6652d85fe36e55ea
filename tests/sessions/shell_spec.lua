-- The sessions module's shell commands against real pools: s:shell on both
-- kinds of pool, its options and its version, s:shell_invoke byte for byte as
-- LangChain's SessionsBashTool (run by Python against the same pool), and
-- LangChain's sanitizers as Python's regular expressions apply them.
local sessions = require "sessions"
local core = require "sessions.core"
local cjson = require "cjson"
local P = require "support.pool"
local util = require "support.util"

local PYTHON = os.getenv("SESH_TEST_PYTHON") or "/usr/bin/python3"

-- Runs a Python program with a JSON value on its stdin; its stdout decoded.
local function python_json(program, input)
  local dir = os.getenv("SESH_TEST_TMP") or "/tmp"
  local base = ("%s/shell-spec-%s"):format(dir, core.uuid4())
  util.write(base .. ".py", program)
  util.write(base .. ".in", cjson.encode(input))
  local p = io.popen(("%s %s < %s"):format(util.quote(PYTHON), util.quote(base .. ".py"),
                                          util.quote(base .. ".in")))
  local out = p:read("a")
  local ok = p:close()
  os.remove(base .. ".py")
  os.remove(base .. ".in")
  assert(ok, "the Python program failed: " .. out)
  return cjson.decode(out)
end

-- LangChain's functions as langchain-azure-dynamic-sessions has them
-- (tools/sessions.py): the sanitizers, the URL and the tool's _run, as
-- SessionsBashTool does them with requests. Only the token provider is left
-- out (the local pool's token is given).
local LANGCHAIN = [==[
import json, re, sys, urllib.parse
import requests

def _sanitize_input(query: str) -> str:
    query = re.sub(r"^(\s|`)*(?i:python)?\s*", "", query)
    query = re.sub(r"(\s|`)*$", "", query)
    return query

def _sanitize_bash_input(query: str) -> str:
    query = re.sub(r"^(\s|`)*(?i:bash|sh)?\s*", "", query)
    query = re.sub(r"(\s|`)*$", "", query)
    return query

def _build_url(pool_management_endpoint, session_id, path):
    if not pool_management_endpoint.endswith("/"):
        pool_management_endpoint += "/"
    encoded_session_id = urllib.parse.quote(session_id)
    query = f"identifier={encoded_session_id}&api-version=2025-02-02-preview"
    query_separator = "&" if "?" in pool_management_endpoint else "?"
    return pool_management_endpoint + path + query_separator + query

def execute(endpoint, token, session_id, bash_command, sanitize_input=True):
    if sanitize_input:
        bash_command = _sanitize_bash_input(bash_command)
    api_url = _build_url(endpoint, session_id, "executions")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = {"shellCommand": bash_command}
    response = requests.post(api_url, headers=headers, json=body)
    response.raise_for_status()
    return response.json()

def _run(endpoint, token, session_id, bash_command, sanitize_input=True):
    response = execute(endpoint, token, session_id, bash_command, sanitize_input)
    result = response.get("result", {})
    status_raw = response.get("status")
    try:
        exit_code = int(status_raw) if status_raw is not None else None
    except (ValueError, TypeError):
        exit_code = None
    content = json.dumps(
        {
            "stdout": result.get("stdout"),
            "stderr": result.get("stderr"),
            "exitCode": exit_code,
        },
        indent=2,
    )
    return content
]==]

describe("s:shell", function()
  local pool, shell_pool
  setup(function()
    pool = P.start{ args = { "--timeout", "60" } }
    shell_pool = P.start{ args = { "--container-type", "Shell", "--timeout", "60" } }
  end)
  teardown(function()
    for _, p in ipairs{ pool, shell_pool } do p:stop(); p:cleanup() end
  end)

  for _, kind in ipairs{ "Python", "Shell" } do
    it("runs a command in a " .. kind .. " pool's session and says how it went", function()
      local p = kind == "Shell" and shell_pool or pool
      local s <close> = p:session{}
      local r = s:shell("echo out; echo err >&2; exit 3")
      assert.equal(3, r.exit_code)
      assert.is_false(r.ok)
      assert.equal("out\n", r.stdout)
      assert.matches("^err\n", r.stderr)
      assert.is_number(r.ms)
      assert.is_string(r.id)
      assert.equal("3", r.raw.status)
      assert.equal(r.id, r.headers["operation-id"])
      local ok = s:shell("cd /tmp; pwd")
      assert.is_true(ok.ok)
      assert.equal(0, ok.exit_code)
      assert.equal("/tmp\n", s:shell("pwd").stdout)
      assert.matches("sessions.shell_result %(exit 0, %d+ ms%): /tmp\\n", tostring(s:shell("pwd")))
    end)
  end

  it("takes stdin, a list of arguments, a timeout, an output cap, and runs asynchronously", function()
    local s <close> = shell_pool:session{}
    assert.equal("first:hello\n", s:shell("read L; echo first:$L", { stdin = "hello\n" }).stdout)
    local argv = s:shell(nil, { args = { "printf", "[%s]", "a b", "it's", "x\ny" } })
    assert.equal("[a b][it's][x\ny]", argv.stdout)
    local t = s:shell("sleep 30", { timeout = 1 })
    assert.equal(-1, t.exit_code)
    assert.equal("ExecutionTimeout", t.error.code)
    local cut = s:shell("seq 1 1000", { max_output = 6 })
    assert.equal("1\n2\n3\n[sesh-pool: stdout truncated at the output limit]", cut.stdout)
    local a = s:shell("sleep 0.5; echo later; exit 2", { async = true, poll_interval = 0.05 })
    assert.equal(2, a.exit_code)
    assert.equal("later\n", a.stdout)
    assert.equal("Asynchronous", a.raw.executionType)
  end)

  it("speaks 2025-02-02-preview when the session's version is older, else the session's own", function()
    local old <close> = pool:session{ api_version = "2024-02-02-preview" }
    local r = old:shell("true")
    assert.matches("api%-version=2025%-02%-02%-preview", r.headers["operation-location"])
    assert.equal("2024-02-02-preview", old.api_version)
    local new <close> = pool:session{ api_version = "2025-10-02-preview" }
    assert.matches("api%-version=2025%-10%-02%-preview", new:shell("true").headers["operation-location"])
  end)

  it("raises a failed command with check(), and refuses bad arguments", function()
    local s <close> = shell_pool:session{}
    local ok, e = pcall(function() return s:shell("echo why >&2; exit 5"):check() end)
    assert.is_false(ok)
    assert.equal("shell", e.kind)
    assert.equal(5, e.code)
    assert.matches("exited with status 5: why", e.message)
    assert.equal(s:shell("true"):check().exit_code, 0)
    for _, bad in ipairs{ { 42 }, { "ls", { args = { "ls" } } }, { nil, { args = {} } },
                          { nil, { args = { "ls", 2 } } }, { "ls", { stdin = 1 } }, { "ls", { nope = 1 } } } do
      local okb, eb = pcall(s.shell, s, bad[1], bad[2])
      assert.is_false(okb)
      assert.equal("usage", eb.kind)
    end
  end)

  it("leaves no process behind when the session restarts", function()
    local s <close> = shell_pool:session{}
    local marker = "sesh-restart-" .. core.uuid4()
    s:shell(("nohup sh -c 'while :; do sleep 0.05; done' %s >/dev/null 2>&1 &"):format(marker))
    local function running()
      local n = 0
      for _, pid in ipairs(assert(core.readdir("/proc"))) do
        local cmd = pid:match("^%d+$") and util.read("/proc/" .. pid .. "/cmdline")
        if cmd and cmd:find(marker, 1, true) then n = n + 1 end
      end
      return n
    end
    assert.is_truthy(util.wait(function() return running() > 0 end, 10))
    s:restart()
    assert.is_truthy(util.wait(function() return running() == 0 end, 10), "the daemon outlived the restart")
    assert.equal("fresh\n", s:shell("echo fresh").stdout)
  end)

  -- Commands whose answers are the same each time they run, LangChain's
  -- sanitizing included (it strips "sh" from "shasum", and the long s of
  -- "ſh"), with text Python's json.dumps escapes.
  local CORPUS = {
    "echo hello",
    "```bash\necho hello\n```",
    "```sh\nprintf 'a\\tb'\n```",
    "  BASH   ls -1 /no/such/dir  ",
    "shasum --version",
    "\u{00A0}\u{2003}echo wide spaces\u{3000}\n",
    "ſh -c 'echo long s'",
    "echo 'ünïcödé ✓ 😀 \u{2028}'",
    "printf '\\001\\037\\177\"\\\\/'",
    "printf '\\377\\376 not utf-8'",
    "printf 'a\\000b'",
    "seq 1 3000",
    "cat; echo read=$?",
    "python3 -c 'print(1/0)'",
    "X=value; cd /tmp",
    "echo $X; pwd; exit 3",
    "echo after the exit: $X",
    "`echo ticks`",
    "bashful",
  }

  it("gives shell_invoke's text byte for byte as LangChain's SessionsBashTool, against the same pool", function()
    for _, p in ipairs{ shell_pool, pool } do
      local id = "lc-" .. core.uuid4()
      local theirs = python_json(LANGCHAIN .. [==[
args = json.load(sys.stdin)
out = [_run(args["endpoint"], args["token"], args["id"], c, s) for c, s in args["commands"]]
print(json.dumps(out))
]==], { endpoint = p.endpoint, token = p.token, id = id,
      commands = (function()
        local list = {}
        for _, c in ipairs(CORPUS) do list[#list + 1] = { c, true } end
        list[#list + 1] = { "```bash\necho unsanitized\n```", false }
        return list
      end)() })
      local s <close> = p:session{ id = "lua-" .. id }
      for i, command in ipairs(CORPUS) do
        assert.equal(theirs[i], s:shell_invoke(command), command)
      end
      assert.equal(theirs[#CORPUS + 1], s:shell_invoke("```bash\necho unsanitized\n```", { sanitize = false }))
      p:request{ method = "DELETE", path = "session", identifier = id, api_version = "2025-02-02-preview" }
    end
  end)
end)

describe("sessions.sanitize", function()
  -- Inputs where Python's idea of whitespace and of case matters.
  local INPUTS = {
    "", "   ", "``", "python", "PYTHON print(1)", "```python\nprint(1)\n```  \t\n",
    "python_var = 1", "pythonic", " \u{85}\u{A0}\u{1680}python x\u{2029}`", "\u{1C}\u{1F}x",
    "bash", "sh", "shred -u f", "bash -c 'ls'", "BaSh\tls", "sh\n\nls", "ſh ls", "baſh ls",
    "\u{200B}sh ls", "``` sh ls ```", "ls ` ` ", "é ✓", "\u{3000}bash\u{3000}ls\u{3000}",
  }
  it("strips what LangChain strips, by Python's rules, for Python and for bash", function()
    local theirs = python_json(LANGCHAIN .. [==[
inputs = json.load(sys.stdin)
print(json.dumps([[_sanitize_input(s), _sanitize_bash_input(s)] for s in inputs]))
]==], INPUTS)
    for i, s in ipairs(INPUTS) do
      assert.equal(theirs[i][1], sessions.sanitize(s), "python: " .. s)
      assert.equal(theirs[i][2], sessions.sanitize(s, { shell = true }), "bash: " .. s)
    end
  end)

  it("keeps a word that only starts like the one stripped, when asked to", function()
    assert.equal("python_var = 1", sessions.sanitize("python_var = 1", { whole_word = true }))
    assert.equal("print(1)", sessions.sanitize("python print(1)", { whole_word = true }))
    assert.equal("shred -u f", sessions.sanitize("```shred -u f```", { shell = true, whole_word = true }))
    assert.equal("ls", sessions.sanitize("```sh\nls\n```", { shell = true, whole_word = true }))
    assert.equal("bashful", sessions.sanitize("bashful", { shell = true, whole_word = true }))
  end)
end)
