-- agent.schema: tool arguments checked against JSON schemas, with messages
-- that tell the model where it went wrong. Values come from sessions.json,
-- as they do in the loop.

local json = require "sessions.json"
local schema = require "agent.schema"

local function check(text, s)
  return schema.check(json.decode(text), s)
end

describe("agent.schema", function()
  local point = {
    type = "object",
    properties = {
      x = { type = "integer", minimum = 0 },
      y = { type = "number", exclusiveMaximum = 10 },
      tag = { type = "string", enum = { "a", "b" } },
      tags = { type = "array", items = { type = "string", maxLength = 3 }, maxItems = 2 },
      opt = { type = { "string", "null" } },
    },
    required = { "x", "y" },
    additionalProperties = false,
  }

  it("accepts what fits", function()
    assert.is_true(check('{"x": 1, "y": 2.5}', point))
    assert.is_true(check('{"x": 0, "y": -3, "tag": "b", "tags": ["ab", "c"], "opt": null}', point))
    assert.is_true(check('{"x": 1.0, "y": 1}', point))   -- 1.0 is an integer in JSON Schema
  end)

  it("names the place and the problem", function()
    local cases = {
      { '{"y": 1}', '$: missing required property "x"' },
      { '{"x": 1.5, "y": 1}', "$.x: expected integer, got number" },
      { '{"x": -1, "y": 1}', "$.x: -1 is less than the minimum 0" },
      { '{"x": 1, "y": 10}', "$.y: 10 must be less than 10" },
      { '{"x": 1, "y": 1, "tag": "c"}', '$.tag: "c" is not one of "a", "b"' },
      { '{"x": 1, "y": 1, "tags": ["abcd"]}', "$.tags[0]: expected at most 3 characters" },
      { '{"x": 1, "y": 1, "tags": ["a", "b", "c"]}', "$.tags: expected at most 2 items, got 3" },
      { '{"x": 1, "y": 1, "tags": [1]}', "$.tags[0]: expected string, got integer" },
      { '{"x": 1, "y": 1, "opt": 3}', "$.opt: expected string or null, got integer" },
      { '{"x": 1, "y": 1, "z": 0}', '$: unexpected property "z"' },
      { '"just a string"', "$: expected object, got string" },
      { '[1, 2]', "$: expected object, got array" },
      { 'null', "$: expected object, got null" },
    }
    for _, c in ipairs(cases) do
      local ok, why = check(c[1], point)
      assert.is_false(ok, c[1])
      assert.equal(c[2], why)
    end
  end)

  it("tells an empty array from an empty object", function()
    assert.is_true(check("{}", { type = "object" }))
    assert.is_true(check("[]", { type = "array" }))
    local ok, why = check("[]", { type = "object" })
    assert.is_false(ok)
    assert.equal("$: expected object, got array", why)
    ok, why = check('{"tags": {}}', { type = "object", properties = { tags = { type = "array" } } })
    assert.is_false(ok)
    assert.equal("$.tags: expected array, got object", why)
  end)

  it("checks anyOf and oneOf", function()
    local s = { anyOf = { { type = "string" }, { type = "integer", minimum = 1 } } }
    assert.is_true(check('"x"', s))
    assert.is_true(check("3", s))
    local ok, why = check("0", s)
    assert.is_false(ok)
    assert.matches("^%$: matches none of the allowed shapes", why)
    local one = { oneOf = { { type = "number" }, { type = "integer" } } }
    assert.is_true(check("1.5", one))
    ok, why = check("2", one)
    assert.is_false(ok)
    assert.equal("$: matches more than one of the allowed shapes", why)
  end)

  it("checks nested objects and quotes odd keys", function()
    local s = { type = "object", properties = {
      ["the key"] = { type = "object", properties = { n = { type = "boolean" } } } } }
    local ok, why = check('{"the key": {"n": "yes"}}', s)
    assert.is_false(ok)
    assert.equal('$["the key"].n: expected boolean, got string', why)
  end)

  it("ignores keywords it does not know", function()
    assert.is_true(check('"x"', { type = "string", format = "uri", ["$comment"] = "c" }))
  end)
end)
