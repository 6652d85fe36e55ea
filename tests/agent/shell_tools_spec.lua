-- The agent's shell tools against real pools: the Bash tool (LangChain's
-- name, description and output), the file tools of deep agents over the
-- session's shell, and scripts/code_agent.lua end to end with the scripted
-- model fixing a failing test in a small project.
local cjson = require "cjson"
local agent = require "agent"
local sessions = require "sessions"
local support = require "support.pool"
local util = require "support.util"
local script = require "pipeline.script"
local openai_stub = require "agent.openai_stub"

local calls, answer = openai_stub.calls, openai_stub.answer

local LANGCHAIN_DESCRIPTION = "A Bash shell. Use this to execute bash commands when you need to perform " ..
  "file operations, run scripts, or execute system commands. Input should be a valid bash command. " ..
  "Returns a JSON object with the stdout, stderr, and exit code. "

local function by_name(tools)
  local t = {}
  for _, tool in ipairs(tools) do t[tool.name] = tool end
  return t
end

describe("agent.shell_tool", function()
  local pool, shell_pool
  setup(function()
    pool = support.start{}
    shell_pool = support.start{ args = { "--container-type", "Shell" } }
  end)
  teardown(function()
    for _, p in ipairs{ pool, shell_pool } do p:stop(); p:cleanup() end
  end)

  it("is LangChain's Bash tool: its name, description and output", function()
    local s <close> = shell_pool:session{}
    local bash = agent.shell_tool(s)
    assert.equal("Bash", bash.name)
    assert.equal(LANGCHAIN_DESCRIPTION, bash.description)
    assert.same({ "bash_command" }, bash.parameters.required)
    assert.equal('{\n  "stdout": "hello\\n",\n  "stderr": "",\n  "exitCode": 0\n}',
                 bash.fn{ bash_command = "```bash\necho hello\n```" })
    local fail = cjson.decode(bash.fn{ bash_command = "echo no >&2; (exit 4)" })
    assert.same({ stdout = "", stderr = "no\n", exitCode = 4 }, fail)
  end)

  it("keeps the shell's state between calls, in either kind of pool", function()
    for _, p in ipairs{ pool, shell_pool } do
      local s <close> = p:session{}
      local bash = agent.shell_tool(s)
      bash.fn{ bash_command = "cd /tmp && mkdir -p proj && cd proj; NAME=kept" }
      assert.equal("/tmp/proj kept\n", cjson.decode(bash.fn{ bash_command = "echo $PWD $NAME" }).stdout)
    end
  end)

  it("strips only a whole bash or sh word, and clips huge output for the model", function()
    local s <close> = shell_pool:session{}
    local bash = agent.shell_tool(s, { max_chars = 100 })
    local r = cjson.decode(bash.fn{ bash_command = "shred --version | head -1 | cut -c1-5" })
    assert.same({ stdout = "shred\n", stderr = "", exitCode = 0 }, r)
    local big = cjson.decode(bash.fn{ bash_command = "seq 1 3000" })
    assert.equal(0, big.exitCode)
    assert.matches("^1\n2\n3\n", big.stdout)
    assert.matches("%[%d+ characters left out%]", big.stdout)
    assert.is_true(#big.stdout < 200)
  end)
end)

describe("agent.file_tools", function()
  local pool, s, t
  setup(function()
    pool = support.start{ args = { "--container-type", "Shell" } }
    s = pool:session{ api_version = "2025-02-02-preview" }   -- a Shell pool's files: second generation
    t = by_name(agent.file_tools(s, { max_chars = 400 }))
    s:shell("mkdir -p src/lib docs && printf 'one\\ntwo\\nthree\\n' > src/a.py && " ..
            "printf 'x = (1)\\n' > src/lib/b.py && : > empty.txt && printf '# doc\\n' > docs/r.md")
  end)
  teardown(function() s:close(); pool:stop(); pool:cleanup() end)

  it("are the deep agents' six, each with a schema the agent can check", function()
    local names = {}
    for _, tool in ipairs(agent.file_tools(s)) do
      names[#names + 1] = tool.name
      assert.equal("object", tool.parameters.type)
      assert.is_string(tool.description)
    end
    assert.same({ "ls", "read_file", "write_file", "edit_file", "glob", "grep" }, names)
  end)

  it("ls lists a folder, folders marked, and says when it is missing", function()
    assert.equal("docs/\nempty.txt\nsrc/", t.ls.fn{})
    assert.equal("src/a.py\nsrc/lib/", t.ls.fn{ path = "src" })
    assert.matches("^Error: .*nowhere", t.ls.fn{ path = "nowhere" })
  end)

  it("read_file numbers lines as cat -n does, pages with offset and limit, and says what is wrong", function()
    assert.equal("     1\tone\n     2\ttwo\n     3\tthree\n", t.read_file.fn{ file_path = "src/a.py" })
    assert.equal("     2\ttwo\n", t.read_file.fn{ file_path = "/mnt/data/src/a.py", offset = 1, limit = 1 })
    assert.matches("shorter", t.read_file.fn{ file_path = "src/a.py", offset = 10 })
    assert.equal("(the file exists but is empty)\n", t.read_file.fn{ file_path = "empty.txt" })
    assert.equal("Error: File 'gone.py' not found", t.read_file.fn{ file_path = "gone.py" })
    assert.matches("is a directory", t.read_file.fn{ file_path = "src" })
    s:shell("seq 1 1000 > long.txt")
    local page = t.read_file.fn{ file_path = "long.txt" }
    assert.matches("^     1\t1\n", page)
    assert.matches("truncated", page)
    assert.is_true(#page < 500)
  end)

  it("write_file writes exact text, making folders, and replaces a file whole", function()
    local text = "line 'one'\n\"two\" $HOME `three` \\ ünï\n"
    assert.equal(("Wrote %d bytes to new/deep/f.txt"):format(#text),
                 t.write_file.fn{ file_path = "new/deep/f.txt", content = text })
    assert.equal(text, s:download("new/deep/f.txt"))
    t.write_file.fn{ file_path = "new/deep/f.txt", content = "short" }
    assert.equal("short", s:download("new/deep/f.txt"))
    assert.matches("^Error: ", t.write_file.fn{ file_path = "/usr/x", content = "no" })
  end)

  it("edit_file replaces an exact string once, refuses one missing or not unique unless asked", function()
    s:upload{ name = "e.py", data = "a = 1\nb = 1\n\255raw bytes\n" }
    assert.equal("Error: String not found in file: 'c = 1'",
                 t.edit_file.fn{ file_path = "e.py", old_string = "c = 1", new_string = "c = 2" })
    assert.matches("^Error: String ' = 1' appears 2 times",
                   t.edit_file.fn{ file_path = "e.py", old_string = " = 1", new_string = " = 2" })
    assert.equal("a = 1\nb = 1\n\255raw bytes\n", s:download("e.py"))
    assert.equal("Replaced 1 occurrence in e.py",
                 t.edit_file.fn{ file_path = "e.py", old_string = "b = 1", new_string = "b = (1)" })
    assert.equal("a = 1\nb = (1)\n\255raw bytes\n", s:download("e.py"))
    assert.equal("Replaced 2 occurrences in e.py",
                 t.edit_file.fn{ file_path = "e.py", old_string = "1", new_string = "%1", replace_all = true })
    assert.equal("a = %1\nb = (%1)\n\255raw bytes\n", s:download("e.py"))
    assert.equal("Error: File 'nope.py' not found (or not a file)",
                 t.edit_file.fn{ file_path = "nope.py", old_string = "a", new_string = "b" })
    assert.matches("^Error: old_string is empty", t.edit_file.fn{ file_path = "e.py", old_string = "", new_string = "b" })
  end)

  it("glob finds files with ** and *, absolute, and says when none match", function()
    assert.equal("/mnt/data/src/a.py\n/mnt/data/src/lib/b.py\n", t.glob.fn{ pattern = "src/**/*.py" })
    assert.equal("/mnt/data/src/lib/b.py\n", t.glob.fn{ pattern = "lib/*.py", path = "src" })
    assert.equal("/mnt/data/docs/r.md\n", t.glob.fn{ pattern = "/mnt/data/d*/*.md" })
    assert.equal("No files found", t.glob.fn{ pattern = "**/*.rs" })
    assert.equal("No files found", t.glob.fn{ pattern = "missing.txt" })
  end)

  it("grep searches literal text in files, contents or counts, and says when nothing matches", function()
    assert.equal("./src/lib/b.py\n", t.grep.fn{ pattern = "(1)" })
    assert.equal("./src/a.py:2:two\n", t.grep.fn{ pattern = "two", output_mode = "content" })
    assert.equal("./src/a.py:1\n", t.grep.fn{ pattern = "three", output_mode = "count" })
    assert.equal("./docs/r.md\n", t.grep.fn{ pattern = "#", glob = "*.md" })
    assert.equal("No matches found", t.grep.fn{ pattern = "no such text" })
    assert.matches("^Error: ", t.grep.fn{ pattern = "x", path = "nowhere" })
  end)

  it("work where the Bash tool's cd went", function()
    local bash = agent.shell_tool(s)
    bash.fn{ bash_command = "cd src" }
    assert.equal("a.py\nlib/", t.ls.fn{})
    assert.equal("     1\tx = (1)\n", t.read_file.fn{ file_path = "lib/b.py" })
    bash.fn{ bash_command = "cd /mnt/data" }
  end)
end)

describe("scripts/code_agent.lua", function()
  local pool, stub
  setup(function() pool = support.start{ args = { "--container-type", "Shell" } } end)
  teardown(function() if pool then pool:stop(); pool:cleanup() end end)
  after_each(function() if stub then stub:stop(); stub = nil end end)

  local NO_LLM = { OPENAI_API_KEY = false, OPENAI_BASE_URL = false, OPENAI_MODEL = false,
                   AZURE_OPENAI_ENDPOINT = false, AZURE_OPENAI_API_KEY = false,
                   AZURE_OPENAI_DEPLOYMENT = false, AZURE_OPENAI_AD_TOKEN = false }

  it("says what to set without a model, before anything else", function()
    local code, out, err = script.run("scripts/code_agent.lua", { "no/such/dir", "task" }, NO_LLM)
    assert.equal(1, code)
    assert.equal("", out)
    assert.matches("No LLM is configured", err)
    assert.matches("OPENAI_API_KEY", err, 1, true)
  end)

  it("fixes a failing test in a small project, downloads the fix and prints the diff", function()
    local root = script.tmpdir("code-agent")
    local project = root .. "/calc"
    os.execute("mkdir -p " .. util.quote(project .. "/tests"))
    util.write(project .. "/calc.py", "def add(a, b):\n    return a - b\n\n\ndef neg(a):\n    return -a\n")
    util.write(project .. "/tests/test_calc.py", table.concat({
      "import unittest", "from calc import add, neg", "",
      "class TestCalc(unittest.TestCase):",
      "    def test_add(self):", "        self.assertEqual(add(2, 3), 5)", "",
      "    def test_neg(self):", "        self.assertEqual(neg(2), -2)", "" }, "\n"))
    util.write(project .. "/tests/__init__.py", "")
    util.write(project .. "/run_tests.sh", "#!/bin/sh\nexec python3 -m unittest discover -s tests -t . 2>&1\n")
    os.execute("chmod +x " .. util.quote(project .. "/run_tests.sh"))
    local function bash(id, command) return { id = id, name = "Bash", arguments = cjson.encode{ bash_command = command } } end
    stub = openai_stub.start{ api_key = "sk-test", steps = {
      calls{ bash("c1", "./run_tests.sh") },
      calls{ { id = "c2", name = "read_file", arguments = cjson.encode{ file_path = "calc.py" } } },
      calls{ { id = "c3", name = "edit_file", arguments = cjson.encode{
        file_path = "calc.py", old_string = "return a - b", new_string = "return a + b" } } },
      calls{ { id = "c4", name = "write_file", arguments = cjson.encode{
        file_path = "NOTES.md", content = "add() subtracted; it adds now.\n" } },
             bash("c5", "./run_tests.sh") },
      answer("Fixed add(): it subtracted instead of adding. The tests pass.") } }
    local out_dir = root .. "/changes"
    local env = { OPENAI_BASE_URL = stub.base_url, OPENAI_API_KEY = "sk-test", OPENAI_MODEL = "stub-model" }
    for k, v in pairs(NO_LLM) do if env[k] == nil then env[k] = v end end
    local code, out, err = script.run("scripts/code_agent.lua", {
      "--endpoint", pool.endpoint, "--token-file", pool.token_file, "--out", out_dir,
      project, "Make the tests pass." }, env)
    assert.equal(0, code, err)

    -- what the model saw: the failure, the numbered file, the edit, the pass
    local reqs = stub:requests()
    assert.equal(5, #reqs)
    local function tool_result(n, k)
      local msgs = reqs[n].body.messages
      return msgs[#msgs - (k or 0)].content
    end
    assert.matches("/mnt/data/calc", reqs[1].body.messages[1].content, 1, true)
    local names = {}
    for _, tool in ipairs(reqs[1].body.tools) do names[#names + 1] = tool["function"].name end
    assert.same({ "Bash", "ls", "read_file", "write_file", "edit_file", "glob", "grep" }, names)
    local first = cjson.decode(tool_result(2))
    assert.equal(1, first.exitCode)
    assert.matches("FAILED %(failures=1%)", first.stdout)
    assert.equal("     1\tdef add(a, b):\n     2\t    return a - b\n     3\t\n     4\t\n" ..
                 "     5\tdef neg(a):\n     6\t    return -a\n", tool_result(3))
    assert.equal("Replaced 1 occurrence in calc.py", tool_result(4))
    local last = cjson.decode(tool_result(5))
    assert.equal(0, last.exitCode)
    assert.matches("\nOK\n", last.stdout)

    -- the diff on stdout, the fix and the new file in --out, the folder untouched
    assert.matches("Invoking: `edit_file`", out, 1, true)
    local diff = out:match("== the changes ==\n(.*)$")
    assert.matches("%-%-%- a/calc.py", diff)
    assert.matches("%+%+%+ b/calc.py", diff)
    assert.matches("\n%-    return a %- b\n%+    return a %+ b\n", diff)
    assert.matches("\n%+add%(%) subtracted; it adds now%.\n", diff)
    assert.is_nil(diff:find("test_calc", 1, true))
    assert.equal("def add(a, b):\n    return a + b\n\n\ndef neg(a):\n    return -a\n", util.read(out_dir .. "/calc.py"))
    assert.equal("add() subtracted; it adds now.\n", util.read(out_dir .. "/NOTES.md"))
    assert.equal(diff, util.read(out_dir .. "/changes.diff"))
    assert.is_nil(util.read(out_dir .. "/tests/test_calc.py"))
    assert.matches("return a %- b", util.read(project .. "/calc.py"))
    assert.matches("2 file%(s%) changed or new, in .*: NOTES.md, calc.py", err)
  end)
end)
