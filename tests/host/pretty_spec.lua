-- lua/pretty.lua: values as a person wants to read them, bounded.
local pretty = require "pretty"

describe("pretty", function()
  it("prints scalars as the REPL does, strings quoted and escaped", function()
    assert.are.equal("42", pretty(42))
    assert.are.equal("1.5", pretty(1.5))
    assert.are.equal("nil", pretty(nil))
    assert.are.equal("true", pretty(true))
    assert.are.equal('"a\\nb\\t\\"q\\"\\0"', pretty('a\nb\t"q"\0'))
    assert.are.equal('"\\0012"', pretty("\0012"))        -- a digit after an escape
  end)

  it("prints the sequence first, then the other keys sorted", function()
    assert.are.equal('{ 1, 2, 3, [1.5] = 0, a = true, b = "x", ["not id"] = 1 }',
                     pretty({ 1, 2, 3, b = "x", a = true, ["not id"] = 1, [1.5] = 0 }))
  end)

  it("quotes keys that are keywords", function()
    assert.are.equal('{ ["end"] = 1 }', pretty({ ["end"] = 1 }))
  end)

  it("breaks a wide table over indented lines", function()
    local t = { name = ("x"):rep(50), nested = { list = { 1, 2, 3 }, flag = false } }
    assert.are.equal(
      '{\n  name = "' .. ("x"):rep(50) .. '",\n  nested = { flag = false, list = { 1, 2, 3 } }\n}',
      pretty(t))
  end)

  it("fills lines with short sequence items", function()
    local t = {}
    for i = 1, 30 do t[i] = i end
    local s = pretty(t)
    assert.matches("^{\n  1, 2, 3,", s)
    local lines = select(2, s:gsub("\n", ""))
    assert.is_true(lines <= 4)
  end)

  it("tags a table that contains itself and refers back to it", function()
    local t = { 1 }
    t.self = t
    t.child = { parent = t }
    assert.are.equal("<1>{ 1, child = { parent = <cycle 1> }, self = <cycle 1> }", pretty(t))
  end)

  it("prints a table reached twice without a cycle in full both times", function()
    local shared = { 1 }
    assert.are.equal("{ a = { 1 }, b = { 1 } }", pretty({ a = shared, b = shared }))
  end)

  it("bounds depth, items, strings and total length", function()
    local deep = { a = { b = { c = { d = {} } } } }
    assert.are.equal("{ a = { b = {...} } }", pretty(deep, { depth = 2 }))
    local many = {}
    for i = 1, 500 do many[i] = i end
    assert.are.equal("{ 1, 2, 3, ... (497 more) }", pretty(many, { items = 3 }))
    assert.are.equal('"abc"...(7 more bytes)', pretty(("abc"):rep(3) .. "d", { string = 3 }))
    local s = pretty(many, { length = 50 })
    assert.are.equal(50 + #"...(output truncated)", #s)
    assert.matches("%.%.%.%(output truncated%)$", s)
  end)

  it("uses __tostring for objects that define it", function()
    local obj = setmetatable({ secret = "x" }, { __tostring = function() return "<session s1>" end })
    assert.are.equal("{ s = <session s1> }", pretty({ s = obj }))
    assert.are.equal('{ secret = "x" }', pretty(obj, { metatables = false }))
  end)

  it("survives a __tostring that fails", function()
    local bad = setmetatable({}, { __tostring = function() error("no") end })
    assert.are.equal("<table: __tostring failed>", pretty(bad))
  end)

  it("prints each value with pretty.print", function()
    local old = _G.print
    local got
    _G.print = function(s) got = s end
    pretty.print({ 1 }, "x")
    _G.print = old
    assert.are.equal('{ 1 }\t"x"', got)
  end)
end)
