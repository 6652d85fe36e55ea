-- console.lua — the Lua half of sesh's console (host/console.c is the other).
--
-- The C side reads lines, runs Lua chunks and calls in here for what Lua says
-- better: how results look (show), what completes a word (complete), and
-- Python mode (python): a line starting with `%` runs in the console's own
-- Python session, shown as a notebook shows a cell.
--
-- The C side also gives this module, before any call:
--   console.read(prompt) -> line | nil (end of input) | nil, "interrupted"
--   console.remember(text)                            one history entry
--   console.tty          stdout is a terminal
--
-- The console's session is console.session (nil until the first `%` line):
--   > require("console").session:upload{ name = "a.csv", file = "a.csv" }

local pretty = require "pretty"

local console = {}

local function getenv(name)
  local v = os.getenv(name)
  if v == "" then return nil end
  return v
end

-- Colors only on a terminal, and never when NO_COLOR is set (no-color.org).
local function paint(code, s)
  if not console.tty or getenv("NO_COLOR") or getenv("TERM") == "dumb" then
    return s
  end
  return "\27[" .. code .. "m" .. s .. "\27[0m"
end

local function strip_ansi(s)
  return (s:gsub("\27%[[%d;]*[A-Za-z]", ""))
end

local function with_newline(s)
  if s == "" or s:sub(-1) == "\n" then return s end
  return s .. "\n"
end


-- Results of a Lua chunk ------------------------------------------------------

local function is_execution(v)
  local mt = getmetatable(v)
  return type(v) == "table" and type(mt) == "table" and rawget(mt, "__name") == "sessions.result"
end

--- Shows the values a chunk returned: tables pretty-printed, the rest as print
--- does, and an execution's result (s:execute(...)) as a notebook shows a cell.
function console.show(...)
  if select("#", ...) == 1 and is_execution(...) then
    console.cells = console.cells + 1
    return console.show_execution((...), require "sessions", console.cells)
  end
  local out = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if type(v) == "table" then
      out[i] = pretty.format(v)
    else
      out[i] = tostring(v)
    end
  end
  io.write(table.concat(out, "\t"), "\n")
end


-- Completion --------------------------------------------------------------------

local keywords = {}
for w in ([[and break do else elseif end false for function goto if in local nil not
            or repeat return then true until while]]):gmatch("%a+") do
  keywords[#keywords + 1] = w
end

local function is_name(s)
  return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil
end

-- Adds the names v offers: its own string keys, then what its metatable's
-- __index tables offer (methods of objects, of strings, of userdata). Only
-- functions when methods_only. Never calls an __index function.
local function collect_names(v, names, methods_only, seen)
  seen = seen or {}
  if v == nil or seen[v] then return end
  seen[v] = true
  if type(v) == "table" then
    for k, x in next, v do
      if is_name(k) and (not methods_only or type(x) == "function") then
        names[k] = true
      end
    end
  end
  local mt = getmetatable(v)
  if type(mt) == "table" then
    local index = rawget(mt, "__index")
    if type(index) == "table" then
      collect_names(index, names, methods_only, seen)
    end
  end
end

-- The value a dotted name leads to (a.b.c), or nil. Indexing may run an
-- __index function; an error there means no completion, not an error.
local function resolve(path)
  if not path:match("^[%a_][%w_]*$") and not path:match("^[%a_][%w_]*[%.%w_]*[%w_]$") then
    return nil
  end
  local v = _G
  for name in path:gmatch("[^.]+") do
    if not is_name(name) then return nil end
    local ok, x = pcall(function() return v[name] end)
    if not ok or x == nil then return nil end
    v = x
  end
  return v
end

--- Candidates for the word line:sub(start, finish): keywords and globals, or
--- fields after `a.b.`, or methods after `obj:`. Each candidate is the whole word.
function console.complete(line, start, finish)
  if line:match("^%%") then return {} end
  local word = line:sub(start, finish)
  local names, head, partial = {}, "", word
  local path, sep, last = word:match("^(.*)([.:])([%w_]*)$")
  if path then
    local v = resolve(path)
    if v == nil then return {} end
    collect_names(v, names, sep == ":")
    head, partial = path .. sep, last
  else
    if not word:match("^[%w_]*$") then return {} end
    for _, k in ipairs(keywords) do names[k] = true end
    collect_names(_G, names, false)
  end
  local out = {}
  for name in pairs(names) do
    if name:sub(1, #partial) == partial then
      out[#out + 1] = head .. name
    end
  end
  table.sort(out)
  return out
end


-- Images ---------------------------------------------------------------------

-- How to show an image: SESH_IMAGES=kitty|iterm|file|off forces it; else the
-- terminal says what it can do.
function console.image_mode()
  local forced = getenv("SESH_IMAGES")
  if forced then
    forced = forced:lower()
    if forced == "kitty" or forced == "iterm" or forced == "file" or forced == "off" then
      return forced
    end
    io.stderr:write(("sesh: SESH_IMAGES=%s is not one of kitty, iterm, file, off; using file\n")
                    :format(forced))
    return "file"
  end
  if not console.tty then return "file" end
  local term, program = getenv("TERM") or "", getenv("TERM_PROGRAM") or ""
  if getenv("KITTY_WINDOW_ID") or term:find("kitty", 1, true) or program == "ghostty" then
    return "kitty"
  end
  if program == "iTerm.app" or program == "WezTerm" or getenv("LC_TERMINAL") == "iTerm2" then
    return "iterm"
  end
  return "file"
end

-- The kitty graphics protocol: the PNG's base64 in chunks of at most 4096 bytes.
local function draw_kitty(b64)
  local out = {}
  for i = 1, #b64, 4096 do
    local more = i + 4096 <= #b64 and 1 or 0
    local control = i == 1 and ("a=T,f=100,m=%d"):format(more) or ("m=%d"):format(more)
    out[#out + 1] = "\27_G" .. control .. ";" .. b64:sub(i, i + 4095) .. "\27\\"
  end
  io.write(table.concat(out), "\n")
end

-- iTerm2's inline images (also WezTerm): one OSC 1337 sequence.
local function draw_iterm(b64, size)
  io.write("\27]1337;File=inline=1;size=", size, ";preserveAspectRatio=1:", b64, "\7\n")
end

local image_count = 0

local function image_dir()
  local dir = getenv("SESH_IMAGE_DIR")
  if not dir then
    local cache = getenv("XDG_CACHE_HOME") or ((getenv("HOME") or "/tmp") .. "/.cache")
    dir = cache .. "/sesh/images"
  end
  return dir
end

local function save_image(result, sessions)
  local dir = image_dir()
  local ok, err = require("sessions.core").mkdir(dir, 448)          -- 0700
  if not ok then return nil, err end
  image_count = image_count + 1
  local name = ("%s/%s-%d.%s"):format(dir, os.date("%Y%m%d-%H%M%S"), image_count,
                                      (result.format or "png"):lower())
  local saved, path = pcall(sessions.save_image, result, name)
  if not saved then return nil, tostring(path) end
  return path or name
end

--- Shows an image result: drawn inline where the terminal can, else saved to a
--- file whose path is printed.
function console.show_image(result, sessions)
  local image = require "sessions.image"
  local decoded, info = pcall(image.decode, result)
  local format, w, h = "image", nil, nil
  if decoded and type(info) == "table" then
    format, w, h = info.format or format, info.width, info.height
  end
  local caption = w and ("%s %dx%d"):format(format, w, h) or format
  local mode = console.image_mode()
  local b64 = result.base64_data:gsub("%s+", "")    -- answers may wrap or end it with newlines
  if decoded and format == "png" and mode == "kitty" then
    draw_kitty(b64)
  elseif decoded and mode == "iterm" then
    draw_iterm(b64, #info.bytes)
  end
  if mode == "file" or ((mode == "kitty" or mode == "iterm") and not decoded) then
    local path, err = save_image(result, sessions)
    if path then
      print(paint("2", ("[%s saved to %s]"):format(caption, path)))
    else
      print(paint("31", ("[%s: could not save it: %s]"):format(caption, err)))
    end
  else
    print(paint("2", ("[%s]"):format(caption)))
  end
end


-- Python mode ------------------------------------------------------------------

console.cells = 0        -- executions shown so far: the n of Out[n]

-- The options of the console's session (sessions.new's), e.g. from LUA_INIT:
--   require("console").options = { endpoint = "https://...", api_version = "2025-10-02-preview" }
-- or hand it a session of your own: require("console").session = s
console.options = {}

-- The console's session: made on first use, closed with the console.
function console.get_session()
  if not console.session then
    local sessions = require "sessions"
    console.session = sessions.new(console.options)
    local id = console.session.id or console.session.identifier
    io.stderr:write(paint("2", ("[python session %s; closed when the console exits]")
                                :format(tostring(id or "started"))), "\n")
  end
  return console.session
end

-- Reads the rest of a cell: lines until an empty one. nil when abandoned.
local function read_cell(first)
  local lines = { first }
  while true do
    local line, why = console.read("...% ")
    if line == nil then
      if why == "interrupted" then return nil end
      break                                   -- end of input ends the cell too
    end
    if line == "" then break end
    lines[#lines + 1] = line
  end
  return table.concat(lines, "\n")
end

-- The code of a `%` line, reading continuation lines when the line opens a
-- block (ends with ":" or "\"), or is "%" or "%%" alone (a cell).
local function python_code(line)
  local code = line:sub(2)
  if code == "%" or code:match("^%s*$") then
    return read_cell(nil)
  end
  if code:match("[:\\]%s*$") then
    return read_cell(code)
  end
  return code
end

--- Shows one execution as a notebook shows a cell.
function console.show_execution(r, sessions, n)
  if r.stdout and r.stdout ~= "" then
    io.write(with_newline(r.stdout))
  end
  if r.stderr and r.stderr ~= "" then
    local text = with_newline(r.stderr)
    if not console.tty then text = strip_ansi(text) end
    io.write(paint("31", text))
  end
  local result = r.result
  if sessions.is_image(result) then
    console.show_image(result, sessions)
  elseif result ~= nil and result ~= "" then
    local text = type(result) == "table" and pretty.format(result) or tostring(result)
    print(paint("31", ("Out[%d]: "):format(n)) .. text)
  end
  local status = tostring(r.status)
  if status ~= "Success" and status ~= "Succeeded" then
    print(paint("2", ("[%s, %d ms]"):format(status, math.floor(tonumber(r.ms) or 0))))
  end
end

local function describe_error(e)
  local msg = type(e) == "table" and tostring(e.message or e) or tostring(e)
  if type(e) == "table" and (e.kind == "interrupted" or msg:lower():find("interrupted", 1, true)) then
    return "interrupted"
  end
  return msg
end

--- Runs a `%` line in the console's session. Errors are shown, not raised:
--- a failing request must not print a traceback of the console's internals.
function console.python(line)
  local code = python_code(line)
  if code == nil or code:match("^%s*$") then return end
  console.remember("%" .. code)            -- a whole cell is one entry; recalled, it runs as is
  local sessions = require "sessions"
  local ok, s = pcall(console.get_session)
  if not ok then
    io.stderr:write(paint("31", "python: cannot start a session: " .. describe_error(s)), "\n")
    return
  end
  local done, r = pcall(s.execute, s, code)
  if not done then
    local msg = describe_error(r)
    if msg == "interrupted" then
      msg = "interrupted (the cell may still be running in the session)"
    end
    io.stderr:write(paint("31", "python: " .. msg), "\n")
    return
  end
  console.cells = console.cells + 1
  console.show_execution(r, sessions, console.cells)
end

--- Closes the console's session, if one was made.
function console.close()
  local s = console.session
  console.session = nil
  if s and s.close then
    local ok, err = pcall(s.close, s)
    if not ok then
      io.stderr:write("python: closing the session failed: ", describe_error(err), "\n")
    end
  end
end

return console
