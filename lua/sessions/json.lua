-- sessions.json — JSON as the pool API and LangChain need it.
--
-- lua-cjson decodes every number as a float (42 becomes 42.0 under Lua 5.4)
-- and can neither order keys nor indent.  This decoder keeps integers as
-- integers, can remember the key order of objects, and the encoder writes
-- exactly what Python's json.dumps(value, indent=2) writes, so that invoke()
-- returns LangChain's text byte for byte.
--
--   json.decode(text [, { ordered = true }]) -> value   (raises a string on bad JSON)
--   json.encode(value)                 -> compact JSON (request bodies)
--   json.dumps(value [, indent])       -> Python json.dumps text (ensure_ascii)
--   json.object(keys, map)             -> a table that encodes its keys in that order
--   json.null                          -> the null sentinel (cjson.null when available)

local json = {}

local ok_cjson, cjson = pcall(require, "cjson")
json.null = ok_cjson and cjson.null or setmetatable({}, { __tostring = function() return "null" end })

local ORDER = setmetatable({}, { __mode = "k" })   -- object -> its keys in order
local EMPTY_ARRAY = { __jsontype = "array" }          -- marks [] apart from {}
json.empty_array = EMPTY_ARRAY

local byte, char, find, sub, format = string.byte, string.char, string.find, string.sub, string.format
local concat = table.concat

-- Decoding ----------------------------------------------------------------

local function fail(text, pos, what)
  local line = 1
  for _ in text:sub(1, pos - 1):gmatch("\n") do line = line + 1 end
  error(format("invalid JSON at byte %d (line %d): %s", pos, line, what), 0)
end

local function skip(text, pos)
  return find(text, "[^ \t\r\n]", pos) or #text + 1
end

local escapes = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function decode_string(text, pos)   -- pos is just after the opening quote
  local stop = find(text, '["\\]', pos)
  if stop and byte(text, stop) == 34 then     -- no escape: most strings
    return sub(text, pos, stop - 1), stop + 1
  end
  local parts, n = {}, 0
  while true do
    local stop = find(text, '["\\]', pos)
    if not stop then fail(text, pos, "unterminated string") end
    if stop > pos then n = n + 1; parts[n] = sub(text, pos, stop - 1) end
    if byte(text, stop) == 34 then             -- closing quote
      return concat(parts), stop + 1
    end
    local e = sub(text, stop + 1, stop + 1)
    if e == "u" then
      local hex = sub(text, stop + 2, stop + 5)
      if not hex:match("^%x%x%x%x$") then fail(text, stop, "bad \\u escape") end
      local cp = tonumber(hex, 16)
      pos = stop + 6
      if cp >= 0xD800 and cp <= 0xDBFF and sub(text, pos, pos + 1) == "\\u" then
        local lo = tonumber(sub(text, pos + 2, pos + 5), 16)
        if lo and lo >= 0xDC00 and lo <= 0xDFFF then
          cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
          pos = pos + 6
        end
      end
      n = n + 1; parts[n] = utf8.char(cp)
    elseif escapes[e] then
      n = n + 1; parts[n] = escapes[e]
      pos = stop + 2
    else
      fail(text, stop, "bad escape in string")
    end
  end
end

local decode_value

local function decode_number(text, pos)
  local s, e = find(text, "^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
  if not s then fail(text, pos, "unexpected character " .. format("%q", sub(text, pos, pos))) end
  local lit = sub(text, s, e)
  local v
  if lit:match("^-?%d+$") then v = math.tointeger(tonumber(lit)) end
  v = v or tonumber(lit)
  if not v then fail(text, pos, "bad number " .. lit) end
  return v, e + 1
end

local function decode_array(text, pos, opts)
  local arr, n = {}, 0
  pos = skip(text, pos)
  if byte(text, pos) == 93 then return setmetatable(arr, EMPTY_ARRAY), pos + 1 end
  while true do
    local v
    v, pos = decode_value(text, pos, opts)
    n = n + 1; arr[n] = v
    pos = skip(text, pos)
    local c = byte(text, pos)
    if c == 93 then return arr, pos + 1 end
    if c ~= 44 then fail(text, pos, "expected ',' or ']' in array") end
    pos = skip(text, pos + 1)
  end
end

local function decode_object(text, pos, opts)
  local obj, keys = {}, opts.ordered and {} or nil
  pos = skip(text, pos)
  if byte(text, pos) == 125 then
    if keys then ORDER[obj] = keys end
    return obj, pos + 1
  end
  while true do
    if byte(text, pos) ~= 34 then fail(text, pos, "expected a string key") end
    local k
    k, pos = decode_string(text, pos + 1)
    pos = skip(text, pos)
    if byte(text, pos) ~= 58 then fail(text, pos, "expected ':' after key") end
    local v
    v, pos = decode_value(text, skip(text, pos + 1), opts)
    if keys and obj[k] == nil then keys[#keys + 1] = k end
    obj[k] = v
    pos = skip(text, pos)
    local c = byte(text, pos)
    if c == 125 then
      if keys then ORDER[obj] = keys end
      return obj, pos + 1
    end
    if c ~= 44 then fail(text, pos, "expected ',' or '}' in object") end
    pos = skip(text, pos + 1)
  end
end

local literals = { t = { "true", true }, f = { "false", false }, n = { "null" } }

function decode_value(text, pos, opts)
  pos = skip(text, pos)
  local c = sub(text, pos, pos)
  if c == "{" then return decode_object(text, pos + 1, opts)
  elseif c == "[" then return decode_array(text, pos + 1, opts)
  elseif c == '"' then return decode_string(text, pos + 1)
  elseif c == "" then fail(text, pos, "unexpected end of text")
  end
  local lit = literals[c]
  if lit then
    if sub(text, pos, pos + #lit[1] - 1) ~= lit[1] then fail(text, pos, "unexpected word") end
    local v = lit[2]
    if lit[1] == "null" then v = json.null end
    return v, pos + #lit[1]
  end
  if c == "N" and sub(text, pos, pos + 2) == "NaN" then return 0 / 0, pos + 3 end
  if c == "I" and sub(text, pos, pos + 7) == "Infinity" then return math.huge, pos + 8 end
  if c == "-" and sub(text, pos, pos + 8) == "-Infinity" then return -math.huge, pos + 9 end
  return decode_number(text, pos)
end

-- The same decoder in C (sessions.core) takes standard JSON; for anything else
-- it declines and this one decides, with its messages.
local ok_core, core = pcall(require, "sessions.core")
local fast_decode = ok_core and type(core) == "table" and core.json_decode or nil

function json.decode(text, opts)
  if type(text) ~= "string" then error("invalid JSON: expected text, got " .. type(text), 0) end
  opts = opts or {}
  if fast_decode then
    local ok, v = fast_decode(text, opts.ordered and ORDER or nil, json.null, EMPTY_ARRAY)
    if ok then return v end
  end
  return json.decode_lua(text, opts)
end

-- The decoder in Lua alone: what the C one must agree with, and the judge
-- of what it declines.
function json.decode_lua(text, opts)
  local v, pos = decode_value(text, 1, opts or {})
  pos = skip(text, pos)
  if pos <= #text then fail(text, pos, "trailing characters after the value") end
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

local function is_array(t)
  if ORDER[t] then return false end
  local n = #t
  if n == 0 then return next(t) == nil and getmetatable(t) ~= nil and getmetatable(t).__jsontype == "array" end
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false end
  end
  return true
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
    local a, b = find(s, '^[^"\\\0-\31\128-\255]+', pos)   -- ASCII needing no escape
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

local function dump(v, indent, level, out, seen)
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
    local sep = indent and "," or ", "
    if is_array(v) then
      if #v == 0 then out[#out + 1] = "[]" else
        out[#out + 1] = "["
        for i = 1, #v do
          out[#out + 1] = (i > 1 and sep or "") .. nl
          dump(v[i], indent, level + 1, out, seen)
        end
        out[#out + 1] = close_nl .. "]"
      end
    else
      local keys = sorted_keys(v)
      local first = true
      out[#out + 1] = "{"
      for _, k in ipairs(keys) do
        if v[k] ~= nil or ORDER[v] then
          out[#out + 1] = (first and "" or sep) .. nl .. py_string(k) .. ": "
          dump(v[k], indent, level + 1, out, seen)
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

-- Python's json.dumps(value, indent=indent) (indent nil: one line, ", " and ": ").
function json.dumps(v, indent)
  local out = {}
  dump(v, indent, 0, out, {})
  return concat(out)
end

-- Compact JSON for request bodies.
function json.encode(v)
  if ok_cjson then return cjson.encode(v) end
  return json.dumps(v)
end

return json
