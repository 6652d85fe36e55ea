-- sessions.json — the JSON of sesh's Lua side: every library (sessions, llm,
-- agent) reads and writes JSON through this module, and nothing else.
--
-- lua-cjson decodes every number as a float (42 becomes 42.0 under Lua 5.4),
-- writes an empty array as {} and can neither order keys nor indent.  Here the
-- decoder (in C, host/binding/ljson.c) keeps integers as integers, marks empty
-- arrays, can remember the key order of objects and says where a text stops
-- being JSON; the encoder writes exactly what Python's json.dumps writes, so
-- that invoke() returns LangChain's text byte for byte.
--
--   json.decode(text [, { ordered = true }]) -> value
--                 raises "invalid JSON at byte N (line L): why" on bad JSON
--   json.encode(value)                 -> compact JSON (request bodies)
--   json.dumps(value [, indent])       -> Python json.dumps text (ensure_ascii)
--   json.object(keys, map)             -> a table that encodes its keys in that order
--   json.array([t])                    -> t marked as an array (so {} encodes as [])
--   json.type_of(v)                    -> "null", "boolean", "number", "string",
--                                         "array", "object" (what encode writes), or nil
--   json.null                          -> the null sentinel (cjson.null when available)

local json = {}

local ok_cjson, cjson = pcall(require, "cjson")
json.null = ok_cjson and cjson.null or setmetatable({}, { __tostring = function() return "null" end })

local ORDER = setmetatable({}, { __mode = "k" })   -- object -> its keys in order
local EMPTY_ARRAY = { __jsontype = "array" }          -- marks [] apart from {}
json.empty_array = EMPTY_ARRAY

local byte, find, sub, format = string.byte, string.find, string.sub, string.format
local concat = table.concat

-- Decoding ----------------------------------------------------------------

-- In C (host/binding/ljson.c): the one JSON decoder of sesh's Lua side.
local decode_c = require("sessions.core").json_decode

function json.decode(text, opts)
  if type(text) ~= "string" then error("invalid JSON: expected text, got " .. type(text), 0) end
  local v, err = decode_c(text, opts and opts.ordered and ORDER or nil, json.null, EMPTY_ARRAY)
  if v == nil then error(err, 0) end
  return v
end

-- Encoding ----------------------------------------------------------------

-- A table that encodes its keys in the order given.
function json.object(keys, map)
  local t = {}
  for _, k in ipairs(keys) do t[k] = map[k] end
  ORDER[t] = keys
  return t
end

function json.keys_of(t) return ORDER[t] end

-- A table that encodes as an array, even when empty (a decoded [] is one).
function json.array(t)
  return setmetatable(t or {}, EMPTY_ARRAY)
end

local function is_array(t)
  if ORDER[t] then return false end
  local n = #t
  if n == 0 then
    local mt = getmetatable(t)
    return next(t) == nil and type(mt) == "table" and mt.__jsontype == "array"
  end
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false end
  end
  return true
end

-- The JSON type a value is written as; nil for what JSON cannot hold.
function json.type_of(v)
  if v == nil or v == json.null then return "null" end
  local t = type(v)
  if t == "boolean" or t == "number" or t == "string" then return t end
  if t == "table" then return is_array(v) and "array" or "object" end
  return nil
end

-- Python's repr(float): the shortest digits that read back to the same
-- double, in fixed notation when -4 <= exponent < 16, else 1e+16 style.
local function py_float(x)
  if x ~= x then return "NaN" end
  if x == math.huge then return "Infinity" end
  if x == -math.huge then return "-Infinity" end
  if x == 0 then return (1 / x < 0) and "-0.0" or "0.0" end
  local e_form
  for p = 1, 17 do
    e_form = format("%." .. (p - 1) .. "e", x)
    if tonumber(e_form) == x then break end
  end
  local sign, int, frac, exp = e_form:match("^(-?)(%d)%.?(%d*)e([-+]%d+)$")
  local digits = (int .. frac):gsub("0+$", "")
  if digits == "" then digits = "0" end
  exp = tonumber(exp)
  if exp >= -4 and exp < 16 then
    local s
    if exp >= #digits - 1 then
      s = digits .. string.rep("0", exp - #digits + 1) .. ".0"
    elseif exp >= 0 then
      s = digits:sub(1, exp + 1) .. "." .. digits:sub(exp + 2)
    else
      s = "0." .. string.rep("0", -exp - 1) .. digits
    end
    return sign .. s
  end
  local mant = digits:sub(1, 1)
  if #digits > 1 then mant = mant .. "." .. digits:sub(2) end
  return format("%s%se%s%02d", sign, mant, exp < 0 and "-" or "+", math.abs(exp))
end
json.py_float = py_float

local short_escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r",
                        ["\t"] = "\\t", ["\b"] = "\\b", ["\f"] = "\\f" }

-- Python's ensure_ascii string form: every non-ASCII code point as \uXXXX
-- (surrogate pairs above the BMP).  Bytes that are not UTF-8 are written as
-- U+FFFD, as Python's decode(errors="replace") would show them.
local function py_string(s)
  local out, n = { '"' }, 1
  local pos, len = 1, #s
  while pos <= len do
    local a, b = find(s, '^[^"\\\0-\31\127-\255]+', pos)   -- ASCII needing no escape (not DEL)
    if a then
      n = n + 1; out[n] = sub(s, a, b); pos = b + 1
    else
      local c = sub(s, pos, pos)
      local cb = byte(c)
      if short_escapes[c] then
        n = n + 1; out[n] = short_escapes[c]; pos = pos + 1
      elseif cb < 0x80 then
        n = n + 1; out[n] = format("\\u%04x", cb); pos = pos + 1
      else
        local ok, cp = pcall(utf8.codepoint, s, pos)
        local nxt = ok and utf8.offset(s, 2, pos)
        if not ok or not nxt then cp, nxt = 0xFFFD, pos + 1 end
        if cp >= 0x10000 then
          local v = cp - 0x10000
          n = n + 1; out[n] = format("\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF))
        else
          n = n + 1; out[n] = format("\\u%04x", cp)
        end
        pos = nxt
      end
    end
  end
  out[n + 1] = '"'
  return concat(out)
end
json.py_string = py_string

local function sorted_keys(t)
  local keys = ORDER[t]
  if keys then return keys end
  keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then error("JSON object keys must be strings, got " .. type(k), 0) end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  return keys
end

-- sep: Python's separators, { item, key } (", " and ": " by default).
local function dump(v, indent, level, out, seen, sep)
  local t = type(v)
  if v == nil or v == json.null then out[#out + 1] = "null"
  elseif t == "boolean" then out[#out + 1] = v and "true" or "false"
  elseif t == "number" then
    out[#out + 1] = math.type(v) == "integer" and format("%d", v) or py_float(v)
  elseif t == "string" then out[#out + 1] = py_string(v)
  elseif t == "table" then
    if seen[v] then error("JSON: circular reference", 0) end
    seen[v] = true
    local nl = indent and ("\n" .. string.rep(" ", indent * (level + 1))) or ""
    local close_nl = indent and ("\n" .. string.rep(" ", indent * level)) or ""
    local item_sep = sep[1]
    if is_array(v) then
      if #v == 0 then out[#out + 1] = "[]" else
        out[#out + 1] = "["
        for i = 1, #v do
          out[#out + 1] = (i > 1 and item_sep or "") .. nl
          dump(v[i], indent, level + 1, out, seen, sep)
        end
        out[#out + 1] = close_nl .. "]"
      end
    else
      local keys = sorted_keys(v)
      local first = true
      out[#out + 1] = "{"
      for _, k in ipairs(keys) do
        if v[k] ~= nil or ORDER[v] then
          out[#out + 1] = (first and "" or item_sep) .. nl .. py_string(k) .. sep[2]
          dump(v[k], indent, level + 1, out, seen, sep)
          first = false
        end
      end
      out[#out + 1] = first and "}" or (close_nl .. "}")
    end
    seen[v] = nil
  else
    error("JSON: cannot encode a " .. t, 0)
  end
end

local PYTHON_SEP, INDENT_SEP, COMPACT_SEP = { ", ", ": " }, { ",", ": " }, { ",", ":" }

-- Python's json.dumps(value, indent=indent) (indent nil: one line, ", " and ": ").
function json.dumps(v, indent)
  local out = {}
  dump(v, indent, 0, out, {}, indent and INDENT_SEP or PYTHON_SEP)
  return concat(out)
end

-- Compact JSON for request bodies: Python's json.dumps(v, separators=(",", ":")).
function json.encode(v)
  local out = {}
  dump(v, nil, 0, out, {}, COMPACT_SEP)
  return concat(out)
end

return json
