-- The console's Lua semantics (lua.c's REPL), driven through a pipe with -i:
-- without a terminal the console reads plain lines, with the same rules.
-- tests/console drives the readline console through a real terminal.
local cli = require "host.cli"

local function repl(input, args, env)
  local a = { "-i" }
  for _, x in ipairs(args or {}) do a[#a + 1] = x end
  return cli.run(a, { stdin = input, env = env })
end

describe("the console through a pipe", function()
  it("prints the value of an expression, and of =expr", function()
    local r = repl("6*7\n=1+2\n")
    assert.are.equal(0, r.code)
    assert.matches("> 42\n> 3\n", r.out, 1, true)
  end)

  it("prints several values separated by tabs, nil included", function()
    assert.matches("> 1\ta\tnil\n", repl("return 1, 'a', nil\n").out, 1, true)
  end)

  it("runs statements without printing anything", function()
    local r = repl("x = 5\nx\n")
    assert.matches("> > 5\n", r.out, 1, true)
  end)

  it("continues an incomplete chunk with _PROMPT2", function()
    local r = repl("for i = 1, 2 do\nprint(i)\nend\n")
    assert.matches("> >> >> 1\n2\n", r.out, 1, true)
  end)

  it("uses _PROMPT and _PROMPT2 when set", function()
    local r = repl("_PROMPT = 'lua% ' _PROMPT2 = '...'\nif true then\nend\n")
    assert.matches("lua% ...lua% ", r.out, 1, true)
  end)

  it("reports an error with its traceback and goes on", function()
    local r = repl("error('oops')\nprint('still here')\n")
    assert.are.equal(0, r.code)
    assert.matches("stdin:1: oops\nstack traceback:", r.err, 1, true)
    assert.matches("still here\n", r.out, 1, true)
  end)

  it("reports a syntax error and goes on", function()
    local r = repl("x = = 2\nprint('next')\n")
    assert.matches("unexpected symbol near '='", r.err, 1, true)
    assert.matches("next\n", r.out, 1, true)
  end)

  it("pretty-prints tables", function()
    local r = repl("{ 1, 2, { a = 1 }, name = 'n' }\n")
    assert.matches('> { 1, 2, { a = 1 }, name = "n" }\n', r.out, 1, true)
  end)

  it("prints a table that contains itself without looping", function()
    local r = repl("t = { 1 } t.me = t\nt\n")
    assert.matches("<1>{ 1, me = <cycle 1> }", r.out, 1, true)
  end)

  it("sees what the script defined when -i follows it", function()
    local dir = cli.tmpdir()
    local s = cli.write(dir .. "/s.lua", "defined = 'by script'\n")
    local r = cli.run({ "-i", s }, { stdin = "defined\n" })
    assert.matches("> by script\n", r.out, 1, true)
  end)

  it("says when input ends inside a chunk", function()
    local r = repl("for i = 1, 2 do\n")
    assert.matches("unfinished chunk", r.err, 1, true)
  end)

  it("still works, plainly, when its Lua part cannot be found", function()
    local dir = cli.tmpdir()
    assert(os.execute(("mkdir -p %s/bin && cp %s %s/bin/sesh"):format(
      cli.quote(dir), cli.quote(cli.sesh), cli.quote(dir))))
    local r = cli.run({ "-i" }, { program = dir .. "/bin/sesh", stdin = "6*7\n{1}\n",
                                 env = { LUA_PATH = "/nowhere/?.lua" } })
    assert.are.equal(0, r.code)
    assert.matches("> 42\n> table: 0x", r.out)
    assert.matches("the console's Lua part is missing", r.err, 1, true)
  end)

  it("shows the version banner first with -i", function()
    assert.matches("^sesh 0%.1%.0", repl("").out)
  end)
end)
