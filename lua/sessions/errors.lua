-- sessions.errors — the error value of sesh's Lua side, as Lua builds it.
--
-- There is one: a table of fields with the metatable of host/binding/lerror.c,
-- which sessions.http raises too and llm builds through this module.  It
-- prints as one sentence and carries its parts as fields, so a script can
-- pcall and branch:
--
--   kind        "http" (the server said no), "transport" (no usable answer),
--               "interrupted", "protocol" (an answer that breaks the API),
--               "auth" (no token), "python" (r:check() on a failed execution),
--               "usage" (bad arguments), "pool" (the local pool could not be
--               found or started), "file", "too_large", "timeout"; llm's "api", "config"
--   module      "sessions" (the default here), "llm"; none for sessions.http's own
--   op          the operation: "execute", "upload", "download", "files", ...
--   status      HTTP status (nil when none arrived)
--   code        service error code (x-ms-error-code or error.code), Python
--               exception, curl code for transport errors
--   message     what the server, libcurl or the module said
--   request_id  the request id the server gave, if any
--   retries     how many times the request was retried before this failure
--   attempts    (transport) attempts in all; url, hint (llm)
--
-- Messages are filtered so that a bearer token never shows in one.

local core = require "sessions.core"

local errors = {}

-- Remove anything that looks like a credential from a text meant for people.
local function redact(s)
  if type(s) ~= "string" then return s end
  s = s:gsub("([Bb]earer%s+)[%w%-%._~%+/=]+", "%1<redacted>")
  s = s:gsub("eyJ[%w%-_]+%.[%w%-_]+%.[%w%-_]*", "<redacted token>")   -- a JWT
  s = s:gsub('("?access_?[Tt]oken"?%s*[:=]%s*"?)[^",%s}]+', "%1<redacted>")
  return s
end
errors.redact = redact

local function hide(s, secret)
  if type(s) ~= "string" or type(secret) ~= "string" or #secret < 4 then return s end
  local out, pos = {}, 1
  while true do
    local a, b = s:find(secret, pos, true)
    if not a then break end
    out[#out + 1] = s:sub(pos, a - 1) .. "<redacted>"
    pos = b + 1
  end
  out[#out + 1] = s:sub(pos)
  return table.concat(out)
end

-- Blank secrets (the token in use) and anything token-like out of a message.
function errors.scrub(message, secrets)
  local msg = redact(message)
  for _, secret in ipairs(secrets or {}) do msg = hide(msg, secret) end
  return msg
end

-- Build an error value (not raised).  fields.secrets: strings to blank out of
-- the message, whatever a server echoed; fields.module defaults to "sessions".
function errors.new(fields)
  local secrets = fields.secrets
  fields.secrets = nil
  fields.message = errors.scrub(fields.message, secrets)
  if fields.module == nil then fields.module = "sessions" end
  return core.error(fields)
end

-- Raise one; level like error()'s is not used: the value carries its context.
function errors.raise(fields)
  error(errors.new(fields), 0)
end

-- Whether v is an error value (of this kind, when given).
function errors.is(v, kind)
  return core.is_error(v) and (kind == nil or v.kind == kind)
end

-- The error value e (any module's, the transport's too) as an error of the
-- sessions module's operation op: the same table, raised again with its place.
function errors.reraise(e, op, fields)
  e.module, e.op = "sessions", op
  for k, v in pairs(fields or {}) do if k ~= "secrets" then e[k] = v end end
  e.message = errors.scrub(e.message, fields and fields.secrets)
  error(e, 0)
end

-- A bad argument from a script: names the function and what was wrong.
function errors.usage(op, message)
  error(errors.new{ kind = "usage", op = op, message = message }, 0)
end

errors.Error = getmetatable(core.error{})
return errors
