-- The `sesh` command line behaves like lua5.4's: arguments, options, exit status, errors.
local cli = require "host.cli"

local run = cli.run

describe("sesh script", function()
  local dir, script

  before_each(function()
    dir = cli.tmpdir()
    script = cli.write(dir .. "/args.lua", [[
      local n = select("#", ...)
      io.write("varargs:", n, ":", table.concat({...}, ","), "\n")
      for i = -3, 3 do io.write(i, "=", tostring(arg[i]), "\n") end
    ]])
  end)

  it("gets its arguments in arg and in ...", function()
    local r = run{ script, "a", "b c" }
    assert.are.equal(0, r.code)
    assert.matches("varargs:2:a,b c\n", r.out, 1, true)
    assert.matches("\n0=" .. script .. "\n", r.out, 1, true)
    assert.matches("\n1=a\n2=b c\n3=nil\n", r.out, 1, true)
    assert.matches("\n%-1=" .. cli.sesh:gsub("%p", "%%%0") .. "\n", r.out)
    assert.matches("-2=nil\n", r.out, 1, true)
  end)

  it("puts the interpreter and options at negative indices", function()
    local r = run{ "-e", "x=1", "-W", script, "z" }
    assert.are.equal(0, r.code)
    assert.matches("\n%-3=%-e\n%-2=x=1\n%-1=%-W\n0=", r.out)
    assert.matches("\n1=z\n", r.out, 1, true)
  end)

  it("exits 1 with the message and a traceback on stderr when the script fails", function()
    cli.write(dir .. "/fail.lua", "local function inner() error('it broke') end\ninner()\n")
    local r = run{ dir .. "/fail.lua" }
    assert.are.equal(1, r.code)
    assert.matches("^sesh: [^\n]*fail%.lua:1: it broke\nstack traceback:\n", r.err)
    assert.matches("in local 'inner'", r.err, 1, true)
    assert.are.equal("", r.out)
  end)

  it("reports a syntax error with the file and line", function()
    cli.write(dir .. "/bad.lua", "x = = 1\n")
    local r = run{ dir .. "/bad.lua" }
    assert.are.equal(1, r.code)
    assert.matches("^sesh: [^\n]*bad%.lua:1: unexpected symbol near '='", r.err)
  end)

  it("reports a missing script", function()
    local r = run{ dir .. "/nope.lua" }
    assert.are.equal(1, r.code)
    assert.matches("sesh: cannot open [^\n]*nope%.lua", r.err)
  end)

  it("passes os.exit's status through", function()
    assert.are.equal(3, run{ "-e", "os.exit(3)" }.code)
    assert.are.equal(1, run{ "-e", "os.exit(false)" }.code)
    assert.are.equal(0, run{ "-e", "os.exit(true)" }.code)
  end)

  it("names error objects that are not strings, using __tostring when there is one", function()
    local r = run{ "-e", "error({})" }
    assert.are.equal(1, r.code)
    assert.matches("sesh: (error object is a table value)", r.err, 1, true)
    r = run{ "-e", "error(setmetatable({}, {__tostring = function() return 'custom!' end}))" }
    assert.are.equal(1, r.code)
    assert.matches("sesh: custom!", r.err, 1, true)
  end)
end)

describe("sesh options", function()
  it("-e runs each string in order, then the script", function()
    local dir = cli.tmpdir()
    local s = cli.write(dir .. "/s.lua", "print('script', x)")
    local r = run{ "-e", "x = 1", "-e", "x = x + 1 print('e', x)", s }
    assert.are.equal(0, r.code)
    assert.are.equal("e\t2\nscript\t2\n", r.out)
  end)

  it("-e accepts its string glued to the option", function()
    local r = run{ "-eprint(40 + 2)" }
    assert.are.equal("42\n", r.out)
  end)

  it("-e failing stops everything with status 1", function()
    local r = run{ "-e", "error('first')", "-e", "print('never')" }
    assert.are.equal(1, r.code)
    assert.are.equal("", r.out)
    assert.matches("sesh: (command line):1: first", r.err, 1, true)
  end)

  it("- runs standard input with the arguments after it", function()
    local r = run({ "-", "p", "q" }, { stdin = "print('stdin', ...)" })
    assert.are.equal(0, r.code)
    assert.are.equal("stdin\tp\tq\n", r.out)
  end)

  it("runs standard input when it is not a terminal and nothing else is given", function()
    local r = run({}, { stdin = "print(6 * 7)" })
    assert.are.equal(0, r.code)
    assert.are.equal("42\n", r.out)
  end)

  it("-- ends the options: a script named like an option runs", function()
    local dir = cli.tmpdir()
    cli.write(dir .. "/-v", "print('dash script', arg[0])")
    local r = run({ "--", "-v" }, { cwd = dir })
    assert.are.equal(0, r.code)
    assert.are.equal("dash script\t-v\n", r.out)
  end)

  it("-l requires a module into a global, -l g=mod into g", function()
    local dir = cli.tmpdir()
    cli.write(dir .. "/mymod.lua", "return { answer = 42 }")
    local env = { LUA_PATH = dir .. "/?.lua;;" }
    local r = run({ "-l", "mymod", "-e", "print(mymod.answer)" }, { env = env })
    assert.are.equal("42\n", r.out)
    r = run({ "-l", "g=mymod", "-e", "print(g.answer, mymod)" }, { env = env })
    assert.are.equal("42\tnil\n", r.out)
    r = run({ "-lmymod", "-e", "print(mymod.answer)" }, { env = env })
    assert.are.equal("42\n", r.out)
  end)

  it("-l with a missing module fails with require's message", function()
    local r = run{ "-l", "no_such_module_here" }
    assert.are.equal(1, r.code)
    assert.matches("module 'no_such_module_here' not found", r.err, 1, true)
  end)

  it("-v prints the version and exits without reading stdin", function()
    local r = run({ "-v" }, { stdin = "print('not run')" })
    assert.are.equal(0, r.code)
    assert.matches("^sesh 0%.1%.0 .*Lua 5%.4", r.out)
    assert.not_matches("not run", r.out, 1, true)
  end)

  it("-W turns warnings on", function()
    assert.matches("Lua warning: careful", run{ "-W", "-e", "warn('careful')" }.err, 1, true)
    assert.are.equal("", run{ "-e", "warn('careful')" }.err)
  end)

  it("rejects an unknown option with the usage", function()
    local r = run{ "-x" }
    assert.are.equal(1, r.code)
    assert.matches("sesh: unrecognized option '-x'", r.err, 1, true)
    assert.matches("usage: sesh [options] [script [args]]", r.err, 1, true)
  end)

  it("says when -e or -l lack their argument", function()
    local r = run{ "-e" }
    assert.are.equal(1, r.code)
    assert.matches("sesh: '-e' needs argument", r.err, 1, true)
    assert.matches("'-l' needs argument", run{ "-l" }.err, 1, true)
  end)
end)

describe("sesh environment", function()
  it("runs LUA_INIT_5_4 in preference to LUA_INIT", function()
    local r = run({ "-e", "print(x)" }, { env = { LUA_INIT_5_4 = "x = 'five-four'", LUA_INIT = "x = 'plain'" } })
    assert.are.equal("five-four\n", r.out)
    r = run({ "-e", "print(x)" }, { env = { LUA_INIT = "x = 'plain'" } })
    assert.are.equal("plain\n", r.out)
  end)

  it("runs LUA_INIT=@file as a file", function()
    local dir = cli.tmpdir()
    local f = cli.write(dir .. "/init.lua", "y = 'from file'")
    assert.are.equal("from file\n", run({ "-e", "print(y)" }, { env = { LUA_INIT = "@" .. f } }).out)
  end)

  it("fails when LUA_INIT fails", function()
    local r = run({ "-e", "print('not reached')" }, { env = { LUA_INIT = "error('init broke')" } })
    assert.are.equal(1, r.code)
    assert.matches("LUA_INIT:1: init broke", r.err, 1, true)
    assert.are.equal("", r.out)
  end)

  it("-E ignores LUA_INIT and LUA_PATH", function()
    local r = run({ "-E", "-e", "print(x, package.path:find('/nowhere/', 1, true))" },
                  { env = { LUA_INIT = "x = 1", LUA_PATH = "/nowhere/?.lua" } })
    assert.are.equal(0, r.code)
    assert.are.equal("nil\tnil\n", r.out)
    r = run({ "-e", "print(package.path:find('/nowhere/', 1, true) ~= nil)" },
            { env = { LUA_PATH = "/nowhere/?.lua" } })
    assert.are.equal("true\n", r.out)
  end)
end)

describe("sesh libraries", function()
  it("finds sessions, cjson and pretty with no LUA_PATH, from any directory", function()
    local r = run({ "-e", [[
      local s = require "sessions"
      local cjson = require "cjson"
      local pretty = require "pretty"
      print(type(s.new), cjson.encode({ 1, 2 }), pretty({ a = 1 }))
    ]] }, { cwd = "/", env = { LUA_PATH = false, LUA_CPATH = false } })
    assert.are.equal("", r.err)
    assert.are.equal("function\t[1,2]\t{ a = 1 }\n", r.out)
  end)

  it("puts its own Lua libraries first on package.path, even with -E", function()
    local share = cli.sesh:gsub("/bin/sesh$", "/share/sesh/lua")
    local r = run{ "-E", "-e", "print(package.path)" }
    assert.are.equal(1, r.out:find(share .. "/?.lua;" .. share .. "/?/init.lua;", 1, true))
  end)

  it("preloads sessions.http and sessions.core", function()
    local r = run{ "-e", [[
      print(package.preload["sessions.http"] ~= nil, package.preload["sessions.core"] ~= nil,
            type(require("sessions.http").client))
    ]] }
    assert.are.equal("true\ttrue\tfunction\n", r.out)
  end)

  it("tells the Lua face where it runs: sessions.host", function()
    local bindir = cli.sesh:gsub("/sesh$", "")
    local r = run{ "-e", [[
      local h = require "sessions.host"
      print(h.version, h.exe_dir, h.pool, h.program, type(h.log))
    ]] }
    assert.are.equal(("0.1.0\t%s\t%s/sesh-pool\tsesh\tfunction\n"):format(bindir, bindir), r.out)
  end)

  it("logs warnings to stderr, debug lines only with SESH_LOG=debug", function()
    local code = "local h = require 'sessions.host' h.log('warn', 'w!') h.log('debug', 'd!')"
    local r = run{ "-e", code }
    assert.are.equal("sesh: warn: w!\n", r.err)
    r = run({ "-e", code }, { env = { SESH_LOG = "debug" } })
    assert.are.equal("sesh: warn: w!\nsesh: debug: d!\n", r.err)
  end)
end)
