-- agent.files: the file tools of LangChain's deep agents (ls, read_file,
-- write_file, edit_file, glob, grep) over a session's shell, for any pool
-- that runs shell commands (a Shell pool, or a Python pool beside its Python).
--
--   files.tools(session, {
--     max_chars = 20000,             -- what any one tool answers at most (listings,
--                                     -- file text, matches), then it says it cut
--     read_limit = 2000,             -- read_file's lines when the model gives no limit
--   })
--
-- Every tool runs one command given as a program and its arguments
-- (execCommandAndArgs): no path, pattern or text of the model is ever read
-- by a shell. Relative paths are the shell's own: they start where the
-- session's shell is (the Bash tool's cd moves them too), /mnt/data at first.
-- A tool's trouble (a missing file, a string not found) is its answer,
-- "Error: ...", for the model to act on.

local core = require "sessions.core"

local files = {}

files.MAX_CHARS = 20000
files.READ_LIMIT = 2000

-- The largest file edit_file reads back (as base64 through the shell's
-- stdout, which the pool caps at its --max-output, 1 MiB by default).
files.EDIT_MAX = 700 * 1024

local function path_param(what)
  return { type = "string", description = what }
end

-- Runs argv in the session; the shell result. stdin: text for the program.
local function run(session, argv, max_chars, stdin)
  return session:shell(nil, { args = argv, max_output = max_chars, stdin = stdin })
end

-- The first line of a command's stderr, without the pool's notes.
local function complaint(r)
  for line in (r.stderr or ""):gmatch("[^\n]+") do
    if line:match("%S") and not line:match("^%[sesh%-pool:") then return line end
  end
  return ("the command failed with exit status %d"):format(r.exit_code)
end

local function error_text(r) return "Error: " .. complaint(r) end

---------------------------------------------------------------------------
-- The tools.

local function ls(session, o)
  return {
    name = "ls",
    description = "Lists the files and directories in a directory, one a line; directories " ..
      "end with '/'. Use it to explore before reading or editing. Relative paths start in the " ..
      "shell's working directory (/mnt/data at first).",
    parameters = { type = "object", properties = {
      path = path_param("The directory to list (default: the working directory)."),
    } },
    fn = function(args)
      local dir = args.path or "."
      local r = run(session, { "ls", "-1ApL", "--", dir }, o.max_chars)
      if r.exit_code ~= 0 then return error_text(r) end
      if r.stdout == "" then return ("%s is empty"):format(dir) end
      local prefix = dir == "." and "" or (dir:gsub("/+$", "") .. "/")
      local out = {}
      for name in r.stdout:gmatch("[^\n]+") do
        out[#out + 1] = name:match("^%[sesh%-pool:") and name or (prefix .. name)
      end
      return table.concat(out, "\n")
    end,
  }
end

-- Numbered lines as cat -n numbers them, from line offset + 1; an empty
-- file says so, a missing one too.
local READ = [[
[ -e "$1" ] || { echo "File '$1' not found" >&2; exit 3; }
[ -d "$1" ] && { echo "'$1' is a directory: use ls" >&2; exit 4; }
[ -s "$1" ] || { echo "(the file exists but is empty)"; exit 0; }
exec awk -v first="$2" -v last="$3" 'NR > last { exit } NR >= first { printf "%6d\t%s\n", NR, $0 }' "$1"
]]

local function read_file(session, o)
  return {
    name = "read_file",
    description = ("Reads a text file, its lines numbered as cat -n numbers them (from 1). " ..
      "By default up to %d lines from the start; give offset (lines to skip) and limit (lines " ..
      "to read) to page through a large file. Read a file before you edit it."):format(o.read_limit),
    parameters = { type = "object", properties = {
      file_path = path_param("The file to read."),
      offset = { type = "integer", minimum = 0, description = "Lines to skip (default 0)." },
      limit = { type = "integer", minimum = 1, description = ("Lines to read (default %d)."):format(o.read_limit) },
    }, required = { "file_path" } },
    fn = function(args)
      local offset = math.tointeger(args.offset or 0) or 0
      local limit = math.tointeger(args.limit or o.read_limit) or o.read_limit
      local r = run(session, { "sh", "-c", READ, "read_file", args.file_path,
                               tostring(offset + 1), tostring(offset + limit) }, o.max_chars)
      if r.exit_code ~= 0 then return error_text(r) end
      if r.stdout == "" then
        return ("(no lines after line %d: the file is shorter)"):format(offset)
      end
      return r.stdout
    end,
  }
end

local WRITE = [[mkdir -p -- "$(dirname -- "$1")" && base64 -d > "$1"]]

-- Writes bytes to a file of the session, creating its directories.
local function put(session, path, bytes)
  local r = run(session, { "sh", "-c", WRITE, "write_file", path }, 4096, core.b64encode(bytes))
  if r.exit_code ~= 0 then return nil, error_text(r) end
  return true
end

local function write_file(session, o)
  return {
    name = "write_file",
    description = "Writes a text file whole: creates it (and its directories) or replaces what " ..
      "it held. To change part of a file, use edit_file.",
    parameters = { type = "object", properties = {
      file_path = path_param("The file to write."),
      content = { type = "string", description = "The whole text of the file." },
    }, required = { "file_path", "content" } },
    fn = function(args)
      local ok, why = put(session, args.file_path, args.content)
      if not ok then return why end
      return ("Wrote %d bytes to %s"):format(#args.content, args.file_path)
    end,
  }
end

-- Its size, a newline, its bytes in base64: what edit_file reads.
local FETCH = [[
[ -f "$1" ] || { echo "File '$1' not found (or not a file)" >&2; exit 3; }
size=$(wc -c < "$1") || exit 1
[ "$size" -le "$2" ] || { echo "'$1' has $size bytes, more than edit_file takes ($2): change it with the shell (sed, python3)" >&2; exit 5; }
echo "$size" && exec base64 -w0 < "$1"
]]

-- The file's bytes, or nil and the error for the model.
local function fetch(session, path)
  local r = run(session, { "sh", "-c", FETCH, "edit_file", path, tostring(files.EDIT_MAX) },
                files.EDIT_MAX * 2)
  if r.exit_code ~= 0 then return nil, error_text(r) end
  local size, b64 = r.stdout:match("^(%d+)\n([%w+/=]*)$")
  local bytes = b64 and core.b64decode(b64)
  if not bytes or #bytes ~= tonumber(size) then
    return nil, ("Error: '%s' could not be read whole: change it with the shell"):format(path)
  end
  return bytes
end

-- How often needle occurs in s (plain text, not a pattern), and s with the
-- first occurrence, or all of them, replaced.
local function replace(s, needle, with, all)
  local out, pos, count = {}, 1, 0
  while true do
    local a, b = s:find(needle, pos, true)
    if not a then break end
    count = count + 1
    if count == 1 or all then out[#out + 1] = s:sub(pos, a - 1) .. with
    else out[#out + 1] = s:sub(pos, b) end
    pos = b + 1
  end
  out[#out + 1] = s:sub(pos)
  return table.concat(out), count
end

local function edit_file(session, o)
  return {
    name = "edit_file",
    description = "Replaces an exact string in a file with another. old_string must match the " ..
      "file's text exactly (indentation included, no line numbers) and be found once, unless " ..
      "replace_all is true. Read the file first.",
    parameters = { type = "object", properties = {
      file_path = path_param("The file to edit."),
      old_string = { type = "string", description = "The exact text to replace." },
      new_string = { type = "string", description = "The text to put in its place." },
      replace_all = { type = "boolean", description = "Replace every occurrence (default false)." },
    }, required = { "file_path", "old_string", "new_string" } },
    fn = function(args)
      local old, new = args.old_string, args.new_string
      if old == "" then return "Error: old_string is empty: give the exact text to replace" end
      if old == new then return "Error: old_string and new_string are the same: nothing to change" end
      local text, why = fetch(session, args.file_path)
      if not text then return why end
      local edited, count = replace(text, old, new, args.replace_all)
      if count == 0 then
        return ("Error: String not found in file: '%s'"):format(old)
      end
      if count > 1 and not args.replace_all then
        return ("Error: String '%s' appears %d times in the file. Give more of the text " ..
                "around it to make it unique, or set replace_all to true."):format(old, count)
      end
      local ok, werr = put(session, args.file_path, edited)
      if not ok then return werr end
      return ("Replaced %d occurrence%s in %s"):format(count, count == 1 and "" or "s", args.file_path)
    end,
  }
end

-- Every match of a glob pattern (with **) under a directory, absolute, one a
-- line; directories end with '/'.
local GLOB = [[
shopt -s globstar nullglob extglob
cd -- "$1" || exit 1
case $2 in /*) base= ;; *) base=${PWD%/}/ ;; esac
IFS=
for f in $2; do
  [ -e "$f" ] || [ -L "$f" ] || continue
  if [ -d "$f" ]; then printf '%s%s/\n' "$base" "$f"; else printf '%s%s\n' "$base" "$f"; fi
done
]]

local function glob(session, o)
  return {
    name = "glob",
    description = "Finds files whose paths match a glob pattern: * (any characters in a name), " ..
      "** (any directories), ? (one character), [abc]. Returns absolute paths, one a line. " ..
      "Examples: **/*.py, src/*.c, /mnt/data/**/test_*.py.",
    parameters = { type = "object", properties = {
      pattern = { type = "string", description = "The glob pattern." },
      path = path_param("The directory to search from (default: the working directory)."),
    }, required = { "pattern" } },
    fn = function(args)
      local r = run(session, { "bash", "--norc", "--noprofile", "-c", GLOB, "glob", args.path or ".",
                               args.pattern }, o.max_chars)
      if r.exit_code ~= 0 then return error_text(r) end
      if r.stdout == "" then return "No files found" end
      return r.stdout
    end,
  }
end

local GREP_MODES = { files_with_matches = "-l", content = "-n", count = "-c" }

local function grep(session, o)
  return {
    name = "grep",
    description = "Searches files for a text (a literal string, not a regular expression), " ..
      "recursively from a directory. output_mode: files_with_matches (the files, by default), " ..
      "content (file:line:text of each matching line) or count (file:matches).",
    parameters = { type = "object", properties = {
      pattern = { type = "string", description = "The text to search for." },
      path = path_param("A file or the directory to search (default: the working directory)."),
      glob = { type = "string", description = "Only files whose names match this, e.g. *.py." },
      output_mode = { type = "string", enum = { "files_with_matches", "content", "count" },
                      description = "What to return (default files_with_matches)." },
    }, required = { "pattern" } },
    fn = function(args)
      local argv = { "grep", "-rIF", GREP_MODES[args.output_mode or "files_with_matches"] }
      if args.output_mode == "content" then argv[#argv + 1] = "-H" end
      if args.glob then argv[#argv + 1] = "--include=" .. args.glob end
      for _, a in ipairs{ "--", args.pattern, args.path or "." } do argv[#argv + 1] = a end
      local r = run(session, argv, o.max_chars)
      local out = r.stdout
      if args.output_mode == "count" then       -- files without a match say :0
        local kept = {}
        for line in out:gmatch("[^\n]+") do
          if not line:match(":0$") then kept[#kept + 1] = line end
        end
        out = #kept > 0 and (table.concat(kept, "\n") .. "\n") or ""
      end
      if out ~= "" then
        if r.exit_code > 1 then out = out .. "(and: " .. complaint(r) .. ")\n" end
        return out
      end
      if r.exit_code <= 1 then return "No matches found" end
      return error_text(r)
    end,
  }
end

---------------------------------------------------------------------------

files.NAMES = { "ls", "read_file", "write_file", "edit_file", "glob", "grep" }
local makers = { ls = ls, read_file = read_file, write_file = write_file, edit_file = edit_file,
                 glob = glob, grep = grep }

function files.tools(session, opts)
  opts = opts or {}
  if type(session) ~= "table" and type(session) ~= "userdata" then
    error("agent.file_tools: expected a session (sessions.new{...})", 2)
  end
  local o = { max_chars = opts.max_chars or files.MAX_CHARS, read_limit = opts.read_limit or files.READ_LIMIT }
  local list = {}
  for i, name in ipairs(files.NAMES) do list[i] = makers[name](session, o) end
  return list
end

files.replace = replace

return files
