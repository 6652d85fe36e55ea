-- sessions.errors — the error values the module raises.
--
-- Every failure is a table that prints as one sentence and carries its parts
-- as fields, so a script can pcall and branch:
--
--   kind        "http" (the server said no), "transport" (no usable answer),
--               "protocol" (an answer that breaks the API), "auth" (no token),
--               "python" (r:check() on a failed execution), "usage" (bad arguments),
--               "pool" (the local pool could not be found or started)
--   op          the operation: "execute", "upload", "download", "files", ...
--   status      HTTP status (nil when none arrived)
--   code        service error code (x-ms-error-code or error.code), curl code
--               for transport errors
--   message     what the server, libcurl or the module said
--   request_id  the request id the server gave, if any
--   retries     how many times the request was retried before this failure
--
-- Messages are filtered so that a bearer token never shows in one.

local errors = {}

local Error = { __name = "sessions.error" }

-- Kinds whose code means something to a reader (a service error code, a
-- Python exception); a curl or errno number is left in the field.
local SHOWS_CODE = { http = true, python = true, protocol = true, auth = true }
Error.__index = Error

-- Remove anything that looks like a credential from a text meant for people.
local function redact(s)
  if type(s) ~= "string" then return s end
  s = s:gsub("([Bb]earer%s+)[%w%-%._~%+/=]+", "%1<redacted>")
  s = s:gsub("eyJ[%w%-_]+%.[%w%-_]+%.[%w%-_]*", "<redacted token>")   -- a JWT
  s = s:gsub('("?access_?[Tt]oken"?%s*[:=]%s*"?)[^",%s}]+', "%1<redacted>")
  return s
end
errors.redact = redact

local function one_line(s)
  s = tostring(s):gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")
  if #s > 600 then s = s:sub(1, 600) .. "…" end
  return s
end

function Error:__tostring()
  local parts = { "sessions: " .. (self.op or "request") .. " failed" }
  local what = {}
  if self.status then what[#what + 1] = "HTTP " .. self.status end
  if self.code and SHOWS_CODE[self.kind] then what[#what + 1] = tostring(self.code) end
  if #what > 0 then parts[#parts + 1] = " (" .. table.concat(what, " ") .. ")" end
  if self.message and self.message ~= "" then parts[#parts + 1] = ": " .. one_line(self.message) end
  if self.request_id then parts[#parts + 1] = " [request id " .. self.request_id .. "]" end
  if self.retries and self.retries > 0 then
    parts[#parts + 1] = (" after %d retr%s"):format(self.retries, self.retries == 1 and "y" or "ies")
  end
  return table.concat(parts)
end

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

-- Build an error value (not raised).  fields.secrets: strings (the token in
-- use) to blank out of the message, whatever a server echoed.
function errors.new(fields)
  local secrets = fields.secrets
  fields.secrets = nil
  local msg = redact(fields.message)
  for _, secret in ipairs(secrets or {}) do msg = hide(msg, secret) end
  fields.message = msg
  return setmetatable(fields, Error)
end

-- Raise one; level like error()'s is not used: the value carries its context.
function errors.raise(fields)
  error(errors.new(fields), 0)
end

function errors.is(v, kind)
  return getmetatable(v) == Error and (kind == nil or v.kind == kind)
end

-- A bad argument from a script: names the function and what was wrong.
function errors.usage(op, message)
  error(errors.new{ kind = "usage", op = op, message = message }, 0)
end

errors.Error = Error
return errors
