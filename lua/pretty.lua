-- pretty.lua — Lua values as a person wants to read them.
--
--   local pretty = require "pretty"
--   print(pretty.format({ 1, 2, name = "x", nested = { a = true } }))
--   --> { 1, 2, name = "x", nested = { a = true } }
--   pretty.print(t1, t2)                 -- format and print each value
--   pretty(t)                            -- same as pretty.format(t)
--
-- Tables print as Lua constructors: the sequence first, then the other keys
-- sorted (numbers, then strings, then the rest), on one line when it fits in
-- `width` columns, indented otherwise. A table reached again while inside
-- itself is a cycle: it is tagged `<1>{ ... }` and referred to as `<cycle 1>`.
-- Output is bounded so that printing a huge or deep value stays readable:
--
--   options (all optional)    default
--   width      columns          80
--   indent     one level        "  "
--   depth      nesting shown    8       deeper tables print as {...}
--   items      entries/table    100     then "... (N more)"
--   string     chars/string     2000    then "...(N more bytes)"
--   length     chars in all     20000   then "...(output truncated)"
--   metatables use __tostring   true    a table with __tostring prints as tostring does
--
-- Values that are not tables print as the REPL shows them: strings quoted,
-- numbers and booleans as tostring, functions and userdata by their address.

local pretty = {}

local defaults = {
  width = 80, indent = "  ", depth = 8, items = 100, string = 2000, length = 20000,
  metatables = true,
}

local keywords = {}
for w in ([[and break do else elseif end false for function goto if in local nil not
            or repeat return then true until while]]):gmatch("%a+") do
  keywords[w] = true
end

local escapes = {
  ["\a"] = "\\a", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r",
  ["\t"] = "\\t", ["\v"] = "\\v", ["\\"] = "\\\\", ['"'] = '\\"',
}

local function quote(s, limit)
  local extra = ""
  if limit and #s > limit then
    extra = ("...(%d more bytes)"):format(#s - limit)
    s = s:sub(1, limit)
  end
  s = s:gsub('([%c\\"])(%d?)', function(c, digit)
    -- a decimal escape followed by a digit needs all three digits: "\0012"
    local e = escapes[c] or (digit ~= "" and "\\%03d" or "\\%d"):format(c:byte())
    return e .. digit
  end)
  return '"' .. s .. '"' .. extra
end

local function is_identifier(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil and not keywords[k]
end

-- Key order: integers, other numbers, strings, then anything else by type and text.
local type_rank = { number = 1, string = 2, boolean = 3 }

local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then
    return (type_rank[ta] or 4) < (type_rank[tb] or 4) or
           ((type_rank[ta] or 4) == (type_rank[tb] or 4) and ta < tb)
  end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local function has_tostring(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__tostring") ~= nil
end

-- Sequence length of t without metamethods.
local function raw_length(t)
  local n = 0
  while rawget(t, n + 1) ~= nil do n = n + 1 end
  return n
end

-- The entries of t to show: the sequence, then the other keys sorted.
local function entries(t)
  local n = raw_length(t)
  local keys = {}
  for k in next, t do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then
      keys[#keys + 1] = k
    end
  end
  table.sort(keys, key_less)
  return n, keys
end

-- Finds the tables that contain themselves (the targets of cycles), up to the depth shown.
local function find_cycles(v, opts)
  local targets, on_path = {}, {}
  local function walk(t, depth)
    if type(t) ~= "table" or depth > opts.depth or (opts.metatables and has_tostring(t)) then
      return
    end
    if on_path[t] then targets[t] = true return end
    on_path[t] = true
    local count = 0
    for k, x in next, t do
      count = count + 1
      if count > opts.items then break end
      walk(k, depth + 1)
      walk(x, depth + 1)
    end
    on_path[t] = nil
  end
  walk(v, 1)
  return targets
end

local Printer = {}
Printer.__index = Printer

function Printer:scalar(v)
  local tv = type(v)
  if tv == "string" then return quote(v, self.opts.string) end
  if tv == "table" then return tostring(v) end      -- a table with __tostring
  return tostring(v)
end

function Printer:key(k)
  if is_identifier(k) then return k end
  return "[" .. (type(k) == "table" and tostring(k) or self:scalar(k)) .. "]"
end

-- Renders v; level is the indentation level of the line the value starts on.
function Printer:render(v, level)
  if type(v) ~= "table" or (self.opts.metatables and has_tostring(v)) then
    local ok, s = pcall(self.scalar, self, v)
    return ok and s or ("<" .. type(v) .. ": __tostring failed>")
  end
  if self.active[v] then
    return ("<cycle %d>"):format(self.ids[v])
  end
  if level >= self.opts.depth then return "{...}" end
  local tag = ""
  if self.cycles[v] then
    self.next_id = self.next_id + 1
    self.ids[v] = self.next_id
    tag = ("<%d>"):format(self.next_id)
  end
  self.active[v] = true
  local parts = {}
  local n, keys = entries(v)
  local shown = 0
  local total = n + #keys
  for i = 1, n do
    if shown >= self.opts.items then break end
    shown = shown + 1
    parts[#parts + 1] = self:render(rawget(v, i), level + 1)
  end
  for _, k in ipairs(keys) do
    if shown >= self.opts.items then break end
    shown = shown + 1
    parts[#parts + 1] = self:key(k) .. " = " .. self:render(rawget(v, k), level + 1)
  end
  if total > shown then
    parts[#parts + 1] = ("... (%d more)"):format(total - shown)
  end
  self.active[v] = nil
  if #parts == 0 then return tag .. "{}" end
  local flat = tag .. "{ " .. table.concat(parts, ", ") .. " }"
  local room = self.opts.width - #self.opts.indent * level
  if #flat <= room and not flat:find("\n", 1, true) then
    return flat
  end
  return tag .. "{\n" .. self:lines(parts, math.min(n, shown), level + 1) .. "\n"
         .. self.opts.indent:rep(level) .. "}"
end

-- The entries of a table broken over lines: one-line items of the sequence
-- (the first nseq parts) fill lines, everything else gets a line of its own.
function Printer:lines(parts, nseq, level)
  local pad = self.opts.indent:rep(level)
  local room = self.opts.width - #pad
  local lines, line = {}, nil
  for i, part in ipairs(parts) do
    local fits = i <= nseq and not part:find("\n", 1, true)
    if fits and line and #line + 2 + #part + 1 <= room then
      line = line .. ", " .. part
    else
      if line then lines[#lines + 1] = line end
      line = part
      if not fits then lines[#lines + 1] = line; line = nil end
    end
  end
  if line then lines[#lines + 1] = line end
  return pad .. table.concat(lines, ",\n" .. pad)
end

--- The text of a value (see the options at the top of this file).
function pretty.format(v, options)
  local opts = setmetatable({}, { __index = defaults })
  for k, x in pairs(options or {}) do opts[k] = x end
  local p = setmetatable({
    opts = opts, active = {}, ids = {}, next_id = 0,
    cycles = find_cycles(v, opts),
  }, Printer)
  local s = p:render(v, 0)
  if #s > opts.length then
    s = s:sub(1, opts.length) .. "...(output truncated)"
  end
  return s
end

--- Prints each value formatted, separated by tabs like print.
function pretty.print(...)
  local out = {}
  for i = 1, select("#", ...) do
    out[i] = pretty.format((select(i, ...)))
  end
  print(table.concat(out, "\t"))
end

return setmetatable(pretty, { __call = function(_, v, options) return pretty.format(v, options) end })
