-- sessions.so: the module for the stock lua5.4 interpreter.
local cli = require "host.cli"

local root = io.popen("pwd"):read("l")
local build = os.getenv("SESH_BUILD") or "build"
if build:sub(1, 1) ~= "/" then build = root .. "/" .. build end
local so_dir = build .. "/lib/lua/5.4"

local function lua54(args, env, cwd)
  return cli.run(args, { program = "/usr/bin/lua5.4", env = env, cwd = cwd or root })
end

local with_lua_path = {
  LUA_CPATH = so_dir .. "/?.so;;",
  LUA_PATH = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;",
}

describe("sessions.so under stock lua5.4", function()
  it("loads with LUA_CPATH and LUA_PATH", function()
    local r = lua54({ "-e", [[
      local s = require "sessions"
      print(type(s.new), type(require("sessions.http").client), type(require("sessions.core")))
    ]] }, with_lua_path)
    assert.are.equal("", r.err)
    assert.are.equal("function\tfunction\ttable\n", r.out)
  end)

  it("finds its Lua part next to itself when only LUA_CPATH is set", function()
    local r = lua54({ "-e", [[
      local s = require "sessions"
      print(type(s.new), package.searchpath("pretty", package.path))
    ]] }, { LUA_CPATH = so_dir .. "/?.so;;", LUA_PATH = false }, "/")
    assert.are.equal("", r.err)
    assert.are.equal("function\t" .. build .. "/share/sesh/lua/pretty.lua\n", r.out)
  end)

  it("answers require 'sessions.host' with the pool next to sesh", function()
    local r = lua54({ "-e", [[
      local h = require "sessions.host"
      print(h.exe_dir, h.pool, h.version)
    ]] }, with_lua_path)
    assert.are.equal(("%s/bin\t%s/bin/sesh-pool\t0.1.0\n"):format(build, build), r.out)
  end)

  it("says clearly when its Lua part cannot be found", function()
    local dir = cli.tmpdir()
    assert(os.execute(("mkdir -p %s/lib/lua/5.4 && cp %s/sessions.so %s/lib/lua/5.4/")
                      :format(cli.quote(dir), cli.quote(so_dir), cli.quote(dir))))
    local r = lua54({ "-e", "require 'sessions'" },
                    { LUA_CPATH = dir .. "/lib/lua/5.4/?.so", LUA_PATH = "/nowhere/?.lua" })
    assert.are.equal(1, r.code)
    assert.matches("module 'sessions': sessions.so needs its Lua part (sessions.lua), installed in " ..
                   dir .. "/share/sesh/lua with it (make install), or set LUA_PATH", r.err, 1, true)
    -- the places it looked, one a line, as lua's own "module not found" lists them
    assert.matches("):\n\tno file '" .. dir .. "/share/sesh/lua/sessions.lua'\n\tno file ", r.err, 1, true)
  end)

  it("finds its Lua part through a relative LUA_CPATH too", function()
    local rel = build:sub(1, #root + 1) == root .. "/" and build:sub(#root + 2) or nil
    assert.is_string(rel, "the build folder is not under the source tree")
    local r = lua54({ "-e", [[
      local s = require "sessions"
      print(type(s.new), package.searchpath("sessions", package.path))
    ]] }, { LUA_CPATH = rel .. "/lib/lua/5.4/?.so;;", LUA_PATH = false })
    assert.are.equal("", r.err)
    assert.are.equal("function\t" .. build .. "/share/sesh/lua/sessions.lua\n", r.out)
  end)

  it("runs scripts/quickstart.lua unchanged with only LUA_CPATH set", function()
    local out = cli.tmpdir()
    local r = lua54({ "scripts/quickstart.lua", out }, { LUA_CPATH = so_dir .. "/?.so;;", LUA_PATH = false })
    assert.are.equal(0, r.code, r.err)
    assert.matches("result: 42\n", r.out, 1, true)
    assert.matches("result: -1530\n", r.out, 1, true)
    assert.are.equal("\137PNG\r\n\26\n", (cli.read(out .. "/sin.png") or ""):sub(1, 8))
  end)

  it("runs scripts/quickstart.lua unchanged with LUA_CPATH and LUA_PATH", function()
    local out = cli.tmpdir()
    local r = lua54({ "scripts/quickstart.lua", out }, with_lua_path)
    assert.are.equal(0, r.code, r.err)
    assert.matches("result: 42\n", r.out, 1, true)
    assert.matches("result: -1530\n", r.out, 1, true)
    local png = cli.read(out .. "/sin.png")
    assert.is_not_nil(png, "no sin.png written")
    assert.are.equal("\137PNG\r\n\26\n", png:sub(1, 8))
  end)
end)
