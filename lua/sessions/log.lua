-- sessions.log — a log line of sesh's Lua side, through its host.
--
--   local log = require "sessions.log"
--   log("debug", "sessions: POST executions -> 200 in 1.2 ms")
--
-- The host (sessions.host.log, host/libsesh.c) hands the line to an
-- embedder's log callback, else prints it on stderr when SESH_LOG lets its
-- level through (debug, info, warn, error; default warn). Levels: debug for
-- each request and sign-in step, info for what changes the machine (a pool
-- started) or is retried, warn for what the user should know. A line never
-- holds a token, a secret or a whole session id.
return function(level, line)
  local h = package.loaded["sessions.host"]
  if h and h.log then h.log(level, line) end
end
