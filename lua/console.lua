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
-- The console's session is console.session, made on first use (a `%` line,
-- Tab on one, or Lua reading the field):
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
    return console.show_execution((...), require "sessions")
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
  if console.cell_lines then               -- a continuation line of a Python cell
    local before = table.concat(console.cell_lines, "\n") .. "\n"
    return console.complete_python(before .. line, #before, start, finish)
  end
  if line:match("^%%") then
    return console.complete_python(line:sub(2), -1, start, finish)
  end
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
    -- names starting with "_" are private (s:_send, __gc) unless asked for
    if name:sub(1, #partial) == partial and (name:sub(1, 1) ~= "_" or partial:sub(1, 1) == "_") then
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

-- The options of the console's session (sessions.new's), e.g. from LUA_INIT:
--   require("console").options = { endpoint = "https://...", api_version = "2025-10-02-preview" }
-- or hand it a session of your own: require("console").session = s
console.options = {}

-- The id is a secret (whoever knows it can use the session): show its start.
local function short_id(id)
  id = tostring(id or "")
  return #id > 8 and (id:sub(1, 8) .. "…") or id
end

-- Execution counts. IPython numbers every cell it runs, and Out[n] shows
-- that n. The console learns the number the next cell of its session gets
-- from the session itself (a hidden cell, below), and counts from there every
-- execution that goes through the session object: `%` lines, and Lua's
-- s:execute, s:run, s:invoke, an agent's tool. After a request that got no
-- answer (Ctrl-C) the number is unknown until the session is asked again.
local counts = setmetatable({}, { __mode = "k" })      -- result -> its execution count
local next_counts = setmetatable({}, { __mode = "k" }) -- session -> { id =, n = the number its next cell gets }

-- The number the next cell of s gets, when known (s:restart() starts afresh).
local function next_count(s)
  local c = next_counts[s]
  return c and c.id == s.id and c.n or nil
end

-- A session's own execute (its class's), past the console's watch below.
local function class_execute(s)
  local mt = getmetatable(s)
  local class = type(mt) == "table" and mt.__index
  return type(class) == "table" and class.execute or nil
end

-- The cell the console sends for itself (Python, run through exec so that it
-- binds no name in the session): it reads the execution count and, when asked,
-- IPython's completions of a text at a cursor (the completer that inspects
-- live objects, as a terminal wants it quick); then, in IPython's
-- post_run_cell event, which comes after IPython has counted the cell, it
-- takes back all it left: the count, its history entry (In, _i, _ii, _iii,
-- _iN) and the last result. It leaves no _ and no Out (it has no value). Its
-- answer is one line of stdout after a record separator (\x1e).
local HIDDEN = [==[
import base64 as _b, json as _j
def _sesh_hidden(ip, arg):
    a = _j.loads(_b.b64decode(arg).decode())
    n = ip.execution_count
    hm = ip.history_manager
    saved = (ip.last_execution_succeeded, ip.last_execution_result)
    def undo(*_):
        try:
            ip.events.unregister("post_run_cell", undo)
        except Exception:
            pass
        if ip.execution_count != n + 1:
            return
        ip.execution_count = n
        for hist in (hm.input_hist_parsed, hm.input_hist_raw):
            if len(hist) > 1:
                hist.pop()
        cache = getattr(hm, "db_input_cache", None)
        if cache and cache[-1][0] == n:
            cache.pop()
        raw = hm.input_hist_raw
        hm._i00, hm._i, hm._ii = hm._i, hm._ii, hm._iii
        hm._iii = raw[-4] if len(raw) >= 4 else ""
        ns = ip.user_ns
        ns.update({"_i": hm._i, "_ii": hm._ii, "_iii": hm._iii})
        ns.pop("_i%d" % n, None)
        ip.last_execution_succeeded, ip.last_execution_result = saved
    ip.events.register("post_run_cell", undo)
    out = {"count": n}
    if "text" in a:
        text, cursor = a["text"], a["cursor"]
        matches = []
        jedi = ip.Completer.use_jedi
        try:
            from IPython.core.completer import provisionalcompleter
            ip.Completer.use_jedi = False
            with provisionalcompleter():
                for c in ip.Completer.completions(text, cursor):
                    matches.append([c.start, c.end, c.text])
                    if len(matches) >= 500:
                        break
        finally:
            ip.Completer.use_jedi = jedi
        out["matches"] = matches
    print("\x1esesh " + _j.dumps(out))
_sesh_hidden(ip, arg)
]==]

local function hidden(s, args)
  local execute = class_execute(s)
  if not execute then return nil end
  local core = require "sessions.core"
  local json = require "sessions.json"
  local code = ("exec(__import__('base64').b64decode('%s').decode(), " ..
                "{'ip': get_ipython(), 'arg': '%s'})"):format(core.b64encode(HIDDEN),
                core.b64encode(json.encode(args)))
  local ok, r = pcall(execute, s, code, { timeout = 10, sanitize = false })
  if not ok or type(r) ~= "table" or type(r.stdout) ~= "string" then return nil end
  local decoded, t = pcall(json.decode, r.stdout:match("\30sesh (%b{})") or "")
  if not decoded or type(t) ~= "table" then return nil end
  if math.type(t.count) == "integer" then next_counts[s] = { id = s.id, n = t.count } end
  return t
end

-- The console watches its session's executions: a field of the instance in
-- front of the class's method, which gives each result its number.
local function watch(s)
  if type(s) ~= "table" or rawget(s, "execute") ~= nil then return end
  local execute = class_execute(s)
  if not execute then return end
  s.execute = function(self, code, opts)
    if next_count(self) == nil then hidden(self, { count = true }) end
    local n = next_count(self)
    next_counts[self] = nil                 -- unknown until this one is answered
    local r = execute(self, code, opts)
    if n then
      counts[r] = n
      next_counts[self] = { id = self.id, n = n + 1 }
    end
    return r
  end
end

-- The console's session: made on first use (a `%` line, Tab on one, or Lua
-- reading console.session), or one given to it; closed with the console.
local current, announce

local function make_session()
  local sessions = require "sessions"
  local s = sessions.new(console.options)
  watch(s)
  current, announce = s, true
  return s
end

--- The session, made when there is none. quiet: say nothing yet (completion
--- draws on the line being typed); the notice comes with the next cell.
function console.get_session(quiet)
  local s = current or make_session()
  if announce and not quiet then
    announce = false
    io.stderr:write(paint("2", ("[python session %s; closed when the console exits]")
                                :format(short_id(s.id))), "\n")
  end
  return s
end

setmetatable(console, {
  __index = function(_, k)
    if k == "session" then return console.get_session() end
  end,
  __newindex = function(t, k, v)
    if k ~= "session" then return rawset(t, k, v) end
    current, announce = v, false
    watch(v)
  end,
})

-- Candidates for the word a readline line ends in, when the line is Python:
-- code is the cell with that line at its end, delta what to add to a byte
-- position of the line to have it in code, start..finish readline's word.
-- IPython answers each completion as a replacement of code[s:e] (code points);
-- readline wants whole words.
function console.complete_python(code, delta, start, finish)
  local cursor = finish + delta                   -- bytes of code before the cursor
  local chars = utf8.len(code, 1, cursor)
  if not chars then return {} end
  local ok, s = pcall(console.get_session, true)
  if not ok then return {} end
  local t = hidden(s, { text = code:sub(1, cursor), cursor = chars })
  if not t or type(t.matches) ~= "table" then return {} end
  local word_at = start - 1 + delta               -- where readline's word starts in code
  local out, seen = {}, {}
  for _, m in ipairs(t.matches) do
    local from = math.type(m[1]) == "integer" and utf8.offset(code, m[1] + 1)
    local text = m[3]
    if from and type(text) == "string" then
      from = from - 1
      local replaced = code:sub(from + 1, cursor)
      local word
      if from >= word_at then
        word = code:sub(word_at + 1, from) .. text
      else
        local head = code:sub(from + 1, word_at)
        if text:sub(1, #head) == head then word = text:sub(#head + 1) end
      end
      -- magics only where one is being typed (IPython offers %xmode after "print(x")
      if text:sub(1, 1) == "%" and replaced:sub(1, 1) ~= "%" then word = nil end
      if word and not seen[word] then
        seen[word] = true
        out[#out + 1] = word
      end
    end
  end
  return out
end

-- Reads the rest of a cell: lines until an empty one. nil when abandoned.
-- While it reads, Tab completes Python with the lines before as context.
local function read_cell(first)
  local lines = { first }
  console.cell_lines = lines
  while true do
    local line, why = console.read("...% ")
    if line == nil then
      if why == "interrupted" then
        console.cell_lines = nil
        return nil
      end
      break                                   -- end of input ends the cell too
    end
    if line == "" then break end
    lines[#lines + 1] = line
  end
  console.cell_lines = nil
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

-- A result's text as Python shows it (a Lua table pretty-printed).
local function result_text(v)
  if type(v) == "table" then return pretty.format(v) end
  if v == true then return "True" elseif v == false then return "False" end
  return tostring(v)
end

--- Shows one execution as a notebook shows a cell: stdout, stderr, then
--- Out[n] with the cell's execution count (n: given, else the one the console
--- counted for this result; "Out:" for a result of another session).
function console.show_execution(r, sessions, n)
  n = n or counts[r]
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
    local text = result_text(result)
    local prompt = n and ("Out[%d]:"):format(n) or "Out:"
    -- as IPython prints it: a text of several lines starts on a line of its own
    print(paint("31", prompt) .. (text:find("\n", 1, true) and "\n" or " ") .. text)
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

--- Called by the C side when the console opens: `sessions` is there as a
--- global, as a notebook has its imports ready.
function console.start()
  if rawget(_G, "sessions") == nil then
    local ok, sessions = pcall(require, "sessions")
    if ok then _G.sessions = sessions end
  end
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
  -- results as IPython shows them (reprs: 'text' quoted), where the version has it
  local jupyter = type(s.features) == "table" and s.features.jupyter or nil
  local done, r = pcall(s.execute, s, code, { jupyter = jupyter })
  if not done then
    local msg = describe_error(r)
    if msg == "interrupted" then
      -- the terminal echoed ^C where the cursor was: the message goes below it
      msg = "\npython: interrupted (the cell may still be running in the session)"
    else
      msg = "python: " .. msg
    end
    io.stderr:write(paint("31", msg), "\n")
    return
  end
  console.show_execution(r, sessions)
end

--- Closes the console's session, if one was made.
function console.close()
  local s = current
  current, announce = nil, false
  if s and s.close then
    local ok, err = pcall(s.close, s)
    if not ok then
      io.stderr:write("python: closing the session failed: ", describe_error(err), "\n")
    end
  end
end

return console
