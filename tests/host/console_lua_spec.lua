-- lua/console.lua, the Lua half of the console: completion, display, image modes.
local cli = require "host.cli"
local console = require "console"

describe("console.complete", function()
  it("completes keywords and globals", function()
    assert.are.same({ "while" }, console.complete("wh", 1, 2))
    assert.are.same({ "collectgarbage" }, console.complete("collectg", 1, 8))
  end)

  it("completes the word under the cursor only", function()
    assert.are.same({ "string.upper" }, console.complete("x = string.up", 5, 13))
  end)

  it("completes fields of nested tables", function()
    _G.console_test_t = { inner = { alpha = 1, alpine = 2, beta = 3 } }
    assert.are.same({ "console_test_t.inner.alpha", "console_test_t.inner.alpine" },
                     console.complete("console_test_t.inner.al", 1, 23))
    _G.console_test_t = nil
  end)

  it("completes methods through the metatable, functions only after ':'", function()
    local methods = { run = function() end, rank = 3 }
    _G.console_test_obj = setmetatable({ rate = 1 }, { __index = methods })
    assert.are.same({ "console_test_obj:run" }, console.complete("console_test_obj:r", 1, 18))
    assert.are.same({ "console_test_obj.rank", "console_test_obj.rate", "console_test_obj.run" },
                     console.complete("console_test_obj.r", 1, 18))
    _G.console_test_obj = nil
  end)

  it("completes methods of userdata such as files", function()
    assert.are.same({ "io.stdout:seek", "io.stdout:setvbuf" }, console.complete("io.stdout:se", 1, 12))
  end)

  it("leaves private names (a leading _) out unless the word starts with one", function()
    local methods = { run = function() end, _send = function() end, __gc = function() end }
    _G.console_test_obj = setmetatable({ _secret = 1, shown = 2 }, { __index = methods })
    assert.are.same({ "console_test_obj:run" }, console.complete("console_test_obj:", 1, 17))
    assert.are.same({ "console_test_obj.run", "console_test_obj.shown" },
                     console.complete("console_test_obj.", 1, 17))
    assert.are.same({ "console_test_obj:__gc", "console_test_obj:_send" },
                     console.complete("console_test_obj:_", 1, 18))
    _G.console_test_obj = nil
  end)

  it("offers nothing for unknown paths, or an __index that fails", function()
    assert.are.same({}, console.complete("no_such_global.x", 1, 16))
    _G.console_test_bad = setmetatable({}, { __index = function() error("boom") end })
    assert.are.same({}, console.complete("console_test_bad.x.y", 1, 20))
    _G.console_test_bad = nil
  end)
end)

describe("console.complete on a Python line", function()
  local json = require "sessions.json"
  local core = require "sessions.core"
  local sent

  -- A session whose pool answers as IPython's completer would: the cell the
  -- console sends carries its question in base64 JSON, the answer is a line
  -- of stdout after a record separator.
  local function fake(matches)
    local class = { execute = function(_, code)
      sent[#sent + 1] = json.decode(core.b64decode(code:match("'arg': '([^']*)'")))
      return { status = "Success", stderr = "",
               stdout = "\30sesh " .. json.encode{ count = 7, matches = matches } .. "\n" }
    end }
    sent = {}
    console.session = setmetatable({}, { __index = class })
  end
  after_each(function() console.session = nil end)

  it("asks the session with the cell's text and cursor in characters", function()
    fake{ { 0, 4, "import" } }
    assert.are.same({ "import" }, console.complete("%impo", 2, 5))
    assert.are.same({ text = "impo", cursor = 4 }, sent[1])
    fake{ { 10, 12, "ñandú" } }                  -- bytes here, characters there
    assert.are.same({ "ñandú" }, console.complete("%x = 'é' + ña", 13, 15))
    assert.are.same({ text = "x = 'é' + ña", cursor = 12 }, sent[1])
  end)

  it("turns IPython's replacements into readline's words", function()
    fake{ { 0, 5, "np.arange" }, { 0, 5, "np.array" } }          -- the whole dotted name
    assert.are.same({ "np.arange", "np.array" }, console.complete("%np.ar", 2, 6))
    fake{ { 3, 5, "arange" } }                                    -- the attribute only (jedi)
    assert.are.same({ "np.arange" }, console.complete("%np.ar", 2, 6))
    fake{ { 6, 7, "x" }, { 6, 7, "%xmode" } }                     -- no magic inside code
    assert.are.same({ "x" }, console.complete("%print(x", 8, 8))
  end)

  it("completes a cell's continuation lines with the lines before", function()
    fake{ { 32, 34, "abs" } }
    console.cell_lines = { "for i in range(2):" }
    assert.are.same({ "np.abs" }, console.complete("    print(np.ab", 11, 15))
    console.cell_lines = nil
    assert.are.same({ text = "for i in range(2):\n    print(np.ab", cursor = 34 }, sent[1])
  end)
end)

describe("console image mode", function()
  local function mode(env)
    env.SESH_IMAGES = env.SESH_IMAGES or false
    for _, k in ipairs{ "TERM", "TERM_PROGRAM", "KITTY_WINDOW_ID", "LC_TERMINAL" } do
      if env[k] == nil then env[k] = false end
    end
    local r = cli.run({ "-e", "local c = require 'console' c.tty = true print(c.image_mode())" },
                      { env = env })
    return (r.out or ""):gsub("\n$", ""), r.err
  end

  it("detects kitty, ghostty, iTerm2 and WezTerm", function()
    assert.are.equal("kitty", mode{ KITTY_WINDOW_ID = "3" })
    assert.are.equal("kitty", mode{ TERM = "xterm-kitty" })
    assert.are.equal("kitty", mode{ TERM_PROGRAM = "ghostty" })
    assert.are.equal("iterm", mode{ TERM_PROGRAM = "iTerm.app" })
    assert.are.equal("iterm", mode{ TERM_PROGRAM = "WezTerm" })
    assert.are.equal("file", mode{ TERM = "xterm-256color" })
  end)

  it("obeys SESH_IMAGES, and says when its value is wrong", function()
    assert.are.equal("off", mode{ SESH_IMAGES = "off", KITTY_WINDOW_ID = "1" })
    assert.are.equal("iterm", mode{ SESH_IMAGES = "ITERM" })
    local m, err = mode{ SESH_IMAGES = "sixel" }
    assert.are.equal("file", m)
    assert.matches("SESH_IMAGES=sixel is not one of kitty, iterm, file, off", err, 1, true)
  end)
end)
