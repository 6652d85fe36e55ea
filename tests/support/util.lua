-- Small helpers every spec and stand-in needs: shell quoting, whole-file
-- reads and writes, waiting for an event, the sesh under test.
--
--   local util = require "support.util"
--   os.execute("rm -rf " .. util.quote(dir));  util.read(path) -> string | nil
--   util.wait(function() return util.read(path) end, 10) -> what fn returned | nil
local util = {}

util.SESH = (os.getenv("SESH_BUILD") or "build") .. "/bin/sesh"

-- A word for /bin/sh, whatever it holds.
function util.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- The whole file, or nil when it cannot be opened.
function util.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Writes text to path (binary, truncating) and returns path.
function util.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

-- Waits for an event: calls fn until it returns a true value, which is
-- returned; nil after `seconds` (default 20). Time is sessions.core's
-- monotonic clock, the one every test times with.
function util.wait(fn, seconds)
  local core = require "sessions.core"
  local deadline = core.monotonic() + (seconds or 20)
  while true do
    local v = fn()
    if v then return v end
    if core.monotonic() > deadline then return nil end
    core.sleep(0.02)
  end
end

return util
