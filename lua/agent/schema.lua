-- agent.schema: checks a tool call's decoded arguments against the tool's
-- JSON schema, so a model's mistake goes back to the model as a message.
--
--   local ok, why = schema.check(value, schema)   -- why: "$.python_code: expected string, got number"
--
-- The subset of JSON Schema that tool definitions use: type (a name or a
-- list), properties, required, additionalProperties (false or a schema),
-- items, enum, const, anyOf, oneOf, minLength/maxLength, minimum/maximum,
-- exclusiveMinimum/exclusiveMaximum, minItems/maxItems. Unknown keywords are
-- ignored, as validators do. Values are what sessions.json decodes (an empty
-- array is told from an empty object).

local json = require "sessions.json"

local schema = {}

-- The JSON type of a decoded value: sessions.json's, with integers told
-- apart (1.0 is an integer to JSON Schema).
local function json_type(v)
  local t = json.type_of(v)
  if t == "number" and v == math.floor(v) and v ~= math.huge and v ~= -math.huge then
    return "integer"
  end
  return t or type(v)
end

local function fits(actual, wanted)
  return actual == wanted or (wanted == "number" and actual == "integer")
end

local function show(v)
  if type(v) == "string" then return ("%q"):format(v) end
  local ok, s = pcall(json.encode, v)
  return ok and s or tostring(v)
end

local function key_path(path, key)
  if type(key) == "string" and key:match("^[%a_][%w_]*$") then return path .. "." .. key end
  return ("%s[%s]"):format(path, show(key))
end

local check

local function check_type(v, s, path)
  local want = s.type
  if want == nil then return true end
  local actual = json_type(v)
  if type(want) == "string" then want = { want } end
  for _, w in ipairs(want) do
    if fits(actual, w) then return true end
  end
  return false, ("%s: expected %s, got %s"):format(path, table.concat(want, " or "), actual)
end

local function check_object(v, s, path)
  if type(v) ~= "table" then return true end
  local props = s.properties or {}
  for _, name in ipairs(s.required or {}) do
    if v[name] == nil then
      return false, ("%s: missing required property %q"):format(path, name)
    end
  end
  for k, x in pairs(v) do
    local sub = props[k]
    if sub then
      local ok, why = check(x, sub, key_path(path, k))
      if not ok then return false, why end
    elseif s.additionalProperties == false then
      return false, ("%s: unexpected property %s"):format(path, show(k))
    elseif type(s.additionalProperties) == "table" then
      local ok, why = check(x, s.additionalProperties, key_path(path, k))
      if not ok then return false, why end
    end
  end
  return true
end

local function check_array(v, s, path)
  if type(v) ~= "table" then return true end
  local n = #v
  if s.minItems and n < s.minItems then
    return false, ("%s: expected at least %d items, got %d"):format(path, s.minItems, n)
  end
  if s.maxItems and n > s.maxItems then
    return false, ("%s: expected at most %d items, got %d"):format(path, s.maxItems, n)
  end
  if type(s.items) == "table" then
    for i = 1, n do
      local ok, why = check(v[i], s.items, ("%s[%d]"):format(path, i - 1))
      if not ok then return false, why end
    end
  end
  return true
end

local function check_scalar(v, s, path)
  if type(v) == "string" then
    local len = utf8.len(v) or #v
    if s.minLength and len < s.minLength then
      return false, ("%s: expected at least %d characters"):format(path, s.minLength)
    end
    if s.maxLength and len > s.maxLength then
      return false, ("%s: expected at most %d characters"):format(path, s.maxLength)
    end
  elseif type(v) == "number" then
    if s.minimum and v < s.minimum then
      return false, ("%s: %s is less than the minimum %s"):format(path, show(v), show(s.minimum))
    end
    if s.maximum and v > s.maximum then
      return false, ("%s: %s is more than the maximum %s"):format(path, show(v), show(s.maximum))
    end
    if type(s.exclusiveMinimum) == "number" and v <= s.exclusiveMinimum then
      return false, ("%s: %s must be more than %s"):format(path, show(v), show(s.exclusiveMinimum))
    end
    if type(s.exclusiveMaximum) == "number" and v >= s.exclusiveMaximum then
      return false, ("%s: %s must be less than %s"):format(path, show(v), show(s.exclusiveMaximum))
    end
  end
  return true
end

local function check_enum(v, s, path)
  if s.const ~= nil and v ~= s.const then
    return false, ("%s: expected %s, got %s"):format(path, show(s.const), show(v))
  end
  if type(s.enum) == "table" then
    for _, allowed in ipairs(s.enum) do
      if v == allowed then return true end
    end
    local shown = {}
    for i, allowed in ipairs(s.enum) do shown[i] = show(allowed) end
    return false, ("%s: %s is not one of %s"):format(path, show(v), table.concat(shown, ", "))
  end
  return true
end

local function check_alternatives(v, s, path)
  local list = s.anyOf or s.oneOf
  if type(list) ~= "table" then return true end
  local matches, first_why = 0, nil
  for _, alt in ipairs(list) do
    local ok, why = check(v, alt, path)
    if ok then matches = matches + 1 else first_why = first_why or why end
  end
  if matches == 0 then
    return false, ("%s: matches none of the allowed shapes (%s)"):format(path, first_why or "?")
  end
  if s.oneOf and matches > 1 then
    return false, ("%s: matches more than one of the allowed shapes"):format(path)
  end
  return true
end

function check(v, s, path)
  if type(s) ~= "table" then return true end
  for _, step in ipairs{ check_type, check_enum, check_alternatives, check_object,
                         check_array, check_scalar } do
    local ok, why = step(v, s, path)
    if not ok then return false, why end
  end
  return true
end

--- Check a decoded value against a schema. Returns true, or false and a
-- message naming the place in the value (JSONPath-like, "$" is the root).
function schema.check(value, s)
  return check(value, s, "$")
end

schema.json_type = json_type

return schema
