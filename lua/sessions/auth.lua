-- sessions.auth — where the bearer token comes from.
--
--   auth.static(token)          a fixed string
--   auth.callback(fn)           fn(reason) -> token [, expires_on]; reason is
--                               "first", "expired" or "refresh" (after a 401)
--   auth.chain(opts)            Microsoft Entra sign-in, like DefaultAzureCredential:
--       1. service principal   AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET
--       2. workload identity   AZURE_FEDERATED_TOKEN_FILE (+ tenant and client id)
--       3. managed identity    IDENTITY_ENDPOINT + IDENTITY_HEADER, else the
--                              instance metadata service (short timeout)
--       4. Azure CLI           az account get-access-token --resource https://dynamicsessions.io
--
-- A credential has :token() -> string and :invalidate().  Tokens are cached
-- and fetched again five minutes before they expire.  Errors list what each
-- source said, and never hold a token, a secret or an assertion.
--
-- Every environment variable can be given as an option instead (tests do):
--   tenant_id, client_id, client_secret, federated_token_file, authority_host,
--   identity_endpoint, identity_header, imds_endpoint (env SESH_IMDS_ENDPOINT;
--   "off" skips the metadata service), az (env SESH_AZ, default "az" on PATH),
--   sources (a list naming the sources to try, in order), clock (a function
--   returning the time in seconds), getenv (a function like os.getenv).

local json = require "sessions.json"
local errors = require "sessions.errors"
local protocol = require "sessions.protocol"
local log = require "sessions.log"

local auth = {}

local REFRESH_MARGIN = 300     -- seconds before expiry
local DEFAULT_LIFETIME = 3600  -- when a source does not say
local IMDS_DEFAULT = "http://169.254.169.254/metadata/identity/oauth2/token"

local function http() return require "sessions.http" end

local function form(t)
  local parts = {}
  for _, kv in ipairs(t) do
    parts[#parts + 1] = protocol.escape(kv[1]) .. "=" .. protocol.escape(kv[2])
  end
  return table.concat(parts, "&")
end

local function first_line(s)
  s = tostring(s or ""):gsub("\r", "")
  return (s:match("^[^\n]*") or s)
end

-- An unusable answer from a token endpoint, said without the body's secrets.
local function token_answer(res, source)
  local ok, doc = pcall(json.decode, res.body or "")
  if res.status ~= 200 then
    local msg = "HTTP " .. tostring(res.status)
    if ok and type(doc) == "table" then
      local e, d = protocol.nonnull(doc.error), protocol.nonnull(doc.error_description)
      if type(e) == "table" then e, d = e.code, e.message end
      d = d or protocol.nonnull(doc.message)
      if e then msg = msg .. " " .. tostring(e) end
      if d then msg = msg .. ": " .. first_line(d) end
    elseif res.status == 401 or res.status == 403 then
      msg = msg .. " (refused)"
    end
    return nil, msg
  end
  if not ok or type(doc) ~= "table" then return nil, "the token endpoint answered invalid JSON" end
  local tok = protocol.nonnull(doc.access_token) or protocol.nonnull(doc.accessToken)
  if type(tok) ~= "string" or tok == "" then return nil, "the answer holds no access_token" end
  return tok, doc
end

-- Absolute expiry from an answer: expires_on (epoch, number or string),
-- expires_in (seconds from now) or the CLI's local-time expiresOn.
local function expiry_of(doc, now)
  local on = tonumber(protocol.nonnull(doc.expires_on))
  if on then return on end
  local inn = tonumber(protocol.nonnull(doc.expires_in))
  if inn then return now + inn end
  local s = protocol.nonnull(doc.expiresOn)
  if type(s) == "string" then
    local y, mo, d, h, mi, sec = s:match("^(%d+)-(%d+)-(%d+)[ T](%d+):(%d+):(%d+)")
    if y then
      return os.time{ year = tonumber(y), month = tonumber(mo), day = tonumber(d),
                      hour = tonumber(h), min = tonumber(mi), sec = tonumber(sec) }
    end
  end
  return now + DEFAULT_LIFETIME
end

-- Sources -----------------------------------------------------------------------
-- Each is function(cfg) -> token, expires_on  |  nil, "what went wrong"

local function post_token(cfg, url, fields)
  local c = cfg.client()
  local ok, res = pcall(c.request, c, {
    method = "POST", url = url, body = form(fields),
    headers = { ["Content-Type"] = "application/x-www-form-urlencoded", Accept = "application/json" },
  })
  if not ok then return nil, "cannot reach " .. url .. ": " .. first_line(errors.redact(tostring(res))) end
  local tok, doc = token_answer(res)
  if not tok then return nil, doc end
  return tok, expiry_of(doc, cfg.clock())
end

local function authority(cfg)
  local host = cfg.authority_host or "https://login.microsoftonline.com"
  if not host:find("^%a[%w+.-]*://") then host = "https://" .. host end
  return (host:gsub("/+$", ""))
end

local sources = {}

sources.service_principal = {
  title = "service principal",
  run = function(cfg)
    local missing = {}
    if not cfg.tenant_id then missing[#missing + 1] = "AZURE_TENANT_ID" end
    if not cfg.client_id then missing[#missing + 1] = "AZURE_CLIENT_ID" end
    if not cfg.client_secret then missing[#missing + 1] = "AZURE_CLIENT_SECRET" end
    if #missing > 0 then return nil, table.concat(missing, ", ") .. " not set" end
    return post_token(cfg, authority(cfg) .. "/" .. protocol.escape(cfg.tenant_id) .. "/oauth2/v2.0/token", {
      { "grant_type", "client_credentials" }, { "client_id", cfg.client_id },
      { "client_secret", cfg.client_secret }, { "scope", cfg.scope },
    })
  end,
}

sources.workload_identity = {
  title = "workload identity",
  run = function(cfg)
    if not cfg.federated_token_file then return nil, "AZURE_FEDERATED_TOKEN_FILE not set" end
    if not cfg.tenant_id or not cfg.client_id then
      return nil, "AZURE_FEDERATED_TOKEN_FILE is set but AZURE_TENANT_ID or AZURE_CLIENT_ID is not"
    end
    local f, err = io.open(cfg.federated_token_file, "rb")
    if not f then return nil, "cannot read the federated token file: " .. tostring(err) end
    local assertion = (f:read("a") or ""):gsub("%s+$", "")
    f:close()
    if assertion == "" then return nil, "the federated token file is empty" end
    return post_token(cfg, authority(cfg) .. "/" .. protocol.escape(cfg.tenant_id) .. "/oauth2/v2.0/token", {
      { "grant_type", "client_credentials" }, { "client_id", cfg.client_id },
      { "client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" },
      { "client_assertion", assertion }, { "scope", cfg.scope },
    })
  end,
}

local function get_token(cfg, client, url, headers, where)
  local ok, res = pcall(client.request, client, { method = "GET", url = url, headers = headers })
  if not ok then return nil, where .. " did not answer: " .. first_line(errors.redact(tostring(res))) end
  local tok, doc = token_answer(res)
  if not tok then return nil, where .. ": " .. doc end
  return tok, expiry_of(doc, cfg.clock())
end

sources.managed_identity = {
  title = "managed identity",
  run = function(cfg)
    local resource = cfg.scope:gsub("/%.default$", "")
    if cfg.identity_endpoint and cfg.identity_header then
      local q = { { "api-version", "2019-08-01" }, { "resource", resource } }
      if cfg.managed_client_id then q[#q + 1] = { "client_id", cfg.managed_client_id } end
      local sep = cfg.identity_endpoint:find("?", 1, true) and "&" or "?"
      return get_token(cfg, cfg.client(), cfg.identity_endpoint .. sep .. form(q),
                       { ["X-IDENTITY-HEADER"] = cfg.identity_header, Accept = "application/json" },
                       "IDENTITY_ENDPOINT")
    end
    if cfg.imds_endpoint == "off" then return nil, "IDENTITY_ENDPOINT not set, metadata service turned off" end
    local q = { { "api-version", "2018-02-01" }, { "resource", resource } }
    if cfg.managed_client_id then q[#q + 1] = { "client_id", cfg.managed_client_id } end
    local sep = cfg.imds_endpoint:find("?", 1, true) and "&" or "?"
    local tok, why = get_token(cfg, cfg.imds_client(), cfg.imds_endpoint .. sep .. form(q),
                               { Metadata = "true" }, "the instance metadata service")
    if not tok then return nil, "IDENTITY_ENDPOINT not set; " .. why end
    return tok, why
  end,
}

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

sources.azure_cli = {
  title = "Azure CLI",
  run = function(cfg)
    local errfile = os.tmpname()
    local cmd = ("%s account get-access-token --resource %s --output json 2>%s"):format(
      shell_quote(cfg.az), shell_quote(cfg.scope:gsub("/%.default$", "")), shell_quote(errfile))
    if cfg.az_timeout then cmd = "timeout " .. cfg.az_timeout .. " " .. cmd end
    local p = io.popen(cmd, "r")
    if not p then return nil, "cannot run " .. cfg.az end
    local out = p:read("a") or ""
    local _, _, rc = p:close()
    local ef = io.open(errfile, "r")
    local err = ef and ef:read("a") or ""
    if ef then ef:close() end
    os.remove(errfile)
    if rc == 127 or rc == 126 then
      return nil, "'" .. cfg.az .. "' not found (install the Azure CLI or set another source)"
    end
    if rc == 124 then return nil, "'az' did not answer within " .. cfg.az_timeout .. " s" end
    if rc ~= 0 then
      local line = first_line(err:gsub("^%s*ERROR:%s*", ""))
      if line == "" then line = "exit status " .. tostring(rc) end
      return nil, errors.redact(line)
    end
    local ok, doc = pcall(json.decode, out)
    if not ok or type(doc) ~= "table" then return nil, "'az' printed something that is not JSON" end
    local tok = protocol.nonnull(doc.accessToken) or protocol.nonnull(doc.access_token)
    if type(tok) ~= "string" or tok == "" then return nil, "'az' printed no accessToken" end
    return tok, expiry_of(doc, cfg.clock())
  end,
}

auth.sources = sources
auth.ORDER = { "service_principal", "workload_identity", "managed_identity", "azure_cli" }

-- Credentials ---------------------------------------------------------------------

local Credential = {}
Credential.__index = Credential
Credential.__name = "sessions.credential"
function Credential:__tostring() return "sessions.credential (" .. self.kind .. ")" end

-- Cached tokens live here, not in the credential's fields, so that printing
-- or dumping a credential or a session never shows one.
local CACHE = setmetatable({}, { __mode = "k" })   -- credential -> { token, expires_on, refreshing }

local function cache(c)
  local t = CACHE[c]
  if not t then t = {}; CACHE[c] = t end
  return t
end

-- Token for the next request (cached while valid).
function Credential:token()
  local st = cache(self)
  local now = self.clock()
  if st.token and (not st.expires_on or now < st.expires_on - REFRESH_MARGIN) then
    return st.token
  end
  local reason = st.token and "expired" or (st.refreshing and "refresh" or "first")
  st.refreshing = nil
  local tok, exp = self:fetch(reason)
  st.token, st.expires_on = tok, exp
  return tok
end

-- After a 401: forget the cached token so that the next token() fetches one.
function Credential:invalidate()
  local st = cache(self)
  st.token, st.expires_on = nil, nil
  st.refreshing = true
end

-- Whether a new token could differ from the last one (a 401 is worth a retry).
function Credential:refreshable() return self.kind ~= "static" end

function auth.static(token)
  local c = setmetatable({ kind = "static", clock = os.time }, Credential)
  function c.fetch() return token end
  cache(c).token = token
  c.invalidate = function() end
  return c
end

function auth.callback(fn)
  local c = setmetatable({ kind = "function", clock = os.time }, Credential)
  function c.fetch(_, reason)
    log("debug", "sessions: sign in: asking the token function (" .. tostring(reason) .. ")")
    local ok, tok, exp = pcall(fn, reason)
    if not ok then
      errors.raise{ kind = "auth", op = "sign in", message = "the token function failed: " .. errors.redact(tostring(tok)) }
    end
    if type(tok) ~= "string" or tok == "" then
      errors.raise{ kind = "auth", op = "sign in", message = "the token function returned " .. type(tok) .. ", not a token string" }
    end
    return tok, tonumber(exp) or 0   -- without an expiry: asked again every time
  end
  return c
end

-- The Entra chain.
function auth.chain(opts)
  opts = opts or {}
  local getenv = opts.getenv or os.getenv
  local function opt(name, env)
    local v = opts[name]
    if v == nil and env then v = getenv(env) end
    if v == "" then v = nil end
    return v
  end
  local cfg = {
    tenant_id = opt("tenant_id", "AZURE_TENANT_ID"),
    client_id = opt("client_id", "AZURE_CLIENT_ID"),
    client_secret = opt("client_secret", "AZURE_CLIENT_SECRET"),
    federated_token_file = opt("federated_token_file", "AZURE_FEDERATED_TOKEN_FILE"),
    authority_host = opt("authority_host", "AZURE_AUTHORITY_HOST"),
    identity_endpoint = opt("identity_endpoint", "IDENTITY_ENDPOINT"),
    identity_header = opt("identity_header", "IDENTITY_HEADER"),
    imds_endpoint = opt("imds_endpoint", "SESH_IMDS_ENDPOINT") or IMDS_DEFAULT,
    managed_client_id = opt("managed_identity_client_id") or opt("client_id", "AZURE_CLIENT_ID"),
    az = opt("az", "SESH_AZ") or "az",
    az_timeout = opts.az_timeout or 20,
    scope = opts.scope or protocol.SCOPE,
    clock = opts.clock or os.time,
  }
  local client, imds_client
  cfg.client = function()
    client = client or http().client{ connect_timeout = 10, timeout = 30 }
    return client
  end
  cfg.imds_client = function()
    imds_client = imds_client or http().client{ connect_timeout = opts.imds_timeout or 1,
                                               timeout = (opts.imds_timeout or 1) * 3 }
    return imds_client
  end
  local order = opts.sources or auth.ORDER
  for _, name in ipairs(order) do
    if not sources[name] then
      errors.usage("sign in", ("unknown credential source %q (known: %s)"):format(
        tostring(name), table.concat(auth.ORDER, ", ")))
    end
  end

  local c = setmetatable({ kind = "azure", clock = cfg.clock, order = order }, Credential)
  function c.fetch()
    local said = {}
    local names = order
    if c.source then   -- the source that worked last time goes first
      names = { c.source }
      for _, n in ipairs(order) do if n ~= c.source then names[#names + 1] = n end end
    end
    for _, name in ipairs(names) do
      log("debug", "sessions: sign in: trying " .. sources[name].title)
      local ok, tok, exp = pcall(sources[name].run, cfg)
      if ok and tok then
        c.source = name
        log("debug", ("sessions: sign in: %s gave a token for %s, valid for %d s"):format(
            sources[name].title, cfg.scope, math.floor((tonumber(exp) or 0) - cfg.clock())))
        return tok, exp
      end
      local why = ok and exp or errors.redact(tostring(tok))
      log("debug", "sessions: sign in: " .. sources[name].title .. ": " .. tostring(why))
      said[#said + 1] = sources[name].title .. ": " .. tostring(why)
    end
    errors.raise{ kind = "auth", op = "sign in",
                  message = "no Azure credential worked (" .. table.concat(said, "; ") .. ")" }
  end
  function c.close()
    if client then client:close() end
    if imds_client then imds_client:close() end
  end
  return c
end

-- A credential from a session's `token` option: a string, a function, a
-- credential object, or nil for the chain.
function auth.from_option(token, chain_opts)
  if type(token) == "string" then
    if token == "" then errors.usage("sessions.new", "the token option is an empty string") end
    return auth.static(token)
  elseif type(token) == "function" then return auth.callback(token)
  elseif getmetatable(token) == Credential then return token
  elseif token == nil then return auth.chain(chain_opts)
  end
  errors.usage("sessions.new", "the token option must be a string, a function or a credential, not a " .. type(token))
end

auth.Credential = Credential
return auth
