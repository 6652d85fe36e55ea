-- Microsoft Entra sign-in: each source of the chain against the stand-in's
-- token endpoints (or a fake `az`), the order of the chain, expiry and
-- refresh, one refresh on 401, and no token in any error text.
local sessions = require "sessions"
local S = require "support.azure_stub"

local stub
setup(function() stub = S.start() end)
teardown(function() if stub then stub:stop() end end)
before_each(function() stub:reset() end)

local NOENV = function() return nil end
local DEAD = "http://127.0.0.1:9/metadata/identity/oauth2/token"   -- nothing listens there

local function token_calls(path_pattern)
  local n = 0
  for _, r in ipairs(stub:log()) do if r.path:match(path_pattern) then n = n + 1 end end
  return n
end

local function pool_auths()
  local out = {}
  for _, r in ipairs(stub:log()) do
    if r.path == "code/execute" or r.path == "executions" then out[#out + 1] = r.auth end
  end
  return out
end

-- Options of the chain: nothing from the environment, no metadata service.
local function chain(extra)
  local o = { getenv = NOENV, imds_endpoint = DEAD, az = "/nonexistent/az", imds_timeout = 0.5 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

local function session(azure, o)
  o = o or {}
  o.endpoint = stub.url
  o.azure = azure
  return sessions.new(o)
end

local function az_json(token, expires_on)
  return ('{"accessToken": "%s", "expiresOn": "2099-01-01 00:00:00.000000", "expires_on": %d, ' ..
          '"subscription": "sub", "tenant": "ten", "tokenType": "Bearer"}'):format(token, expires_on)
end

describe("service principal", function()
  it("signs in with client credentials at the authority, scope dynamicsessions.io", function()
    local s = session(chain{ tenant_id = "tenant-1", client_id = "client-1", client_secret = "s3cret",
                             authority_host = stub.url })
    for _ = 1, 3 do assert.equal(42, s:execute("6 * 7").result) end
    assert.equal(1, token_calls("^/tenant%-1/oauth2/v2%.0/token$"))   -- cached
    local auths = pool_auths()
    assert.equal(3, #auths)
    assert.matches("^Bearer tok%-sp%-", auths[1])
  end)

  it("says what Entra said about a wrong secret, without the secret", function()
    local s = session(chain{ tenant_id = "tenant-1", client_id = "client-1", client_secret = "wrong-secret-value",
                             authority_host = stub.url })
    local ok, e = pcall(s.execute, s, "1")
    assert.is_false(ok)
    assert.equal("auth", e.kind)
    local text = tostring(e)
    assert.matches("service principal: HTTP 401 invalid_client: AADSTS7000215", text)
    assert.is_nil(text:find("wrong-secret-value", 1, true))
  end)
end)

describe("workload identity", function()
  it("sends the federated token file as a client assertion", function()
    stub:config{ assertion = "federated-assertion-jwt" }
    local dir = S.tmpdir("wi")
    local f = assert(io.open(dir .. "/token", "w")); f:write("federated-assertion-jwt\n"); f:close()
    local s = session(chain{ tenant_id = "t2", client_id = "c2", federated_token_file = dir .. "/token",
                             authority_host = stub.url })
    assert.equal(42, s:execute("6 * 7").result)
    assert.matches("^Bearer tok%-wi%-", pool_auths()[1])
  end)
end)

describe("managed identity", function()
  it("uses IDENTITY_ENDPOINT with IDENTITY_HEADER", function()
    local s = session(chain{ identity_endpoint = stub.url .. "/msi/token", identity_header = "id-header" })
    assert.equal(42, s:execute("6 * 7").result)
    assert.matches("^Bearer tok%-mi%-", pool_auths()[1])
    local call = stub:log()[1]
    assert.equal("/msi/token", call.path)
    assert.equal("2019-08-01", call.query["api-version"])
    assert.equal("https://dynamicsessions.io", call.query.resource)
  end)

  it("falls back to the instance metadata service (here a stand-in) with Metadata: true", function()
    local s = session(chain{ imds_endpoint = stub.url .. "/metadata/identity/oauth2/token" })
    assert.equal(42, s:execute("6 * 7").result)
    assert.matches("^Bearer tok%-imds%-", pool_auths()[1])
    assert.equal("true", stub:log()[1].headers.metadata)
  end)

  it("gives up on a metadata service that does not answer, quickly", function()
    local s = session(chain{ sources = { "managed_identity" } })
    local t0 = require("sessions.core").monotonic()
    local ok, e = pcall(s.execute, s, "1")
    assert.is_false(ok)
    assert.matches("managed identity: IDENTITY_ENDPOINT not set; the instance metadata service did not answer", tostring(e))
    assert.is_true(require("sessions.core").monotonic() - t0 <= 4)
  end)
end)

describe("Azure CLI", function()
  it("runs az account get-access-token for dynamicsessions.io", function()
    stub:config{ tokens = { "az-cli-token-1" } }
    local az, dir = S.fake_az{ stdout = az_json("az-cli-token-1", os.time() + 3600) }
    local s = session(chain{ az = az })
    assert.equal(42, s:execute("6 * 7").result)
    assert.equal("Bearer az-cli-token-1", pool_auths()[1])
    assert.equal("account get-access-token --resource https://dynamicsessions.io --output json\n",
                 S.read(dir .. "/calls"))
  end)

  it("passes on what az says when it is not signed in", function()
    local az = S.fake_az{ stderr = "ERROR: Please run 'az login' to setup account.\n", rc = 1 }
    local s = session(chain{ az = az })
    local ok, e = pcall(s.execute, s, "1")
    assert.is_false(ok)
    assert.matches("Azure CLI: Please run 'az login' to setup account%.", tostring(e))
  end)
end)

describe("the chain", function()
  it("lists what every source said when none works", function()
    local s = session(chain{})
    local ok, e = pcall(s.execute, s, "1")
    assert.is_false(ok)
    local text = tostring(e)
    assert.equal("auth", e.kind)
    assert.matches("service principal: AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET not set", text)
    assert.matches("workload identity: AZURE_FEDERATED_TOKEN_FILE not set", text)
    assert.matches("managed identity: IDENTITY_ENDPOINT not set", text)
    assert.matches("Azure CLI: '/nonexistent/az' not found", text)
    assert.is_nil(text:find("\n"))
  end)

  it("tries service principal, workload identity, managed identity, Azure CLI, in that order", function()
    stub:config{ assertion = "fed", tokens = { "az-token" } }
    local dir = S.tmpdir("order")
    local f = assert(io.open(dir .. "/fed", "w")); f:write("fed"); f:close()
    local az, azdir = S.fake_az{ stdout = az_json("az-token", os.time() + 3600) }
    local base = { tenant_id = "t", client_id = "c", authority_host = stub.url, federated_token_file = dir .. "/fed",
                   identity_endpoint = stub.url .. "/msi/token", identity_header = "id-header", az = az }
    local function used(extra)
      stub:clear()
      local o = chain(base)
      for k, v in pairs(extra) do o[k] = v end
      local s = session(o)
      s:execute("1")
      return pool_auths()[1]
    end
    assert.matches("tok%-sp%-", used{ client_secret = "s3cret" })
    assert.matches("tok%-wi%-", used{ client_secret = "wrong" })          -- service principal refused
    assert.matches("tok%-mi%-", used{ federated_token_file = dir .. "/missing" })
    assert.equal("Bearer az-token", used{ federated_token_file = dir .. "/missing", identity_header = "bad" })
    assert.is_nil(S.read(azdir .. "/calls"):find("\n.", 1))                -- az ran once, last
  end)

  it("reads its settings from the environment (AZURE_*, AZURE_AUTHORITY_HOST)", function()
    local prog = S.tmpdir("env") .. "/prog.lua"
    local f = assert(io.open(prog, "w"))
    f:write(([[
      local s = require("sessions").new{ endpoint = %q, azure = { imds_endpoint = %q, az = "/nonexistent/az" } }
      print(s:execute("6 * 7").result)
    ]]):format(stub.url, DEAD))
    f:close()
    local sesh = (os.getenv("SESH_BUILD") or "build") .. "/bin/sesh"
    local p = io.popen(("env AZURE_TENANT_ID=tenv AZURE_CLIENT_ID=cenv AZURE_CLIENT_SECRET=s3cret " ..
                        "AZURE_AUTHORITY_HOST=%s/ %s %s 2>&1"):format(stub.url, sesh, prog))
    local out = p:read("a")
    p:close()
    assert.equal("42\n", out)
    assert.equal(1, token_calls("^/tenv/oauth2/v2%.0/token$"))
  end)
end)

describe("tokens", function()
  it("are fetched again five minutes before they expire", function()
    local t = 1000000
    local s = session(chain{ tenant_id = "t", client_id = "c", client_secret = "s3cret", authority_host = stub.url,
                             clock = function() return t end })
    s:execute("1")
    t = t + 3600 - 301          -- the stand-in's tokens live 3600 s
    s:execute("1")
    assert.equal(1, token_calls("oauth2"))
    t = t + 2                   -- now within five minutes of expiry
    s:execute("1")
    assert.equal(2, token_calls("oauth2"))
    local auths = pool_auths()
    assert.equal(auths[1], auths[2])
    assert.not_equal(auths[2], auths[3])
  end)

  it("are refreshed once after a 401, and the request retried once", function()
    local s = session(chain{ tenant_id = "t", client_id = "c", client_secret = "s3cret", authority_host = stub.url })
    s:execute("1")
    stub:config{ revoke = true }            -- the next pool call refuses every token issued so far
    assert.equal(42, s:execute("6 * 7").result)
    assert.equal(2, token_calls("oauth2"))
    assert.equal(3, #pool_auths())
  end)

  it("from a function are asked again after a 401, and a second 401 is an error", function()
    local reasons = {}
    local s = sessions.new{ endpoint = stub.url, token = function(reason)
      reasons[#reasons + 1] = reason
      return "never-valid-token-" .. #reasons
    end }
    local ok, e = pcall(s.execute, s, "1")
    assert.is_false(ok)
    assert.equal(401, e.status)
    assert.same({ "first", "refresh" }, reasons)
    assert.equal(2, #pool_auths())
    assert.is_nil(tostring(e):find("never-valid-token", 1, true))
  end)

  it("given as a string are never asked for again, and never shown", function()
    local s = sessions.new{ endpoint = stub.url, token = "plain-secret-token" }
    local ok, e = pcall(s.execute, s, "1")
    assert.is_false(ok)
    assert.equal(401, e.status)
    assert.equal(1, #pool_auths())
    assert.is_nil(tostring(e):find("plain-secret-token", 1, true))
    assert.is_nil(tostring(s):find("plain-secret-token", 1, true))
  end)

  it("never appear in the text of any error of a signed-in session", function()
    local s = session(chain{ tenant_id = "t", client_id = "c", client_secret = "s3cret", authority_host = stub.url })
    s:execute("1")
    local token = pool_auths()[1]:match("^Bearer (.*)$")
    local texts = {}
    for _, f in ipairs{
      function() return s:download("missing.bin") end,
      function() stub:script{ method = "POST", path = "executions", responses = { { status = 500, body = "oops " .. token } } }; return s:execute("1") end,
      function() stub:script{ method = "GET", path = "files", responses = { { status = 403, json = { error = { code = "Forbidden", message = "token " .. token .. " lacks role" } } } } }; return s:files() end,
    } do
      local ok, e = pcall(f)
      assert.is_false(ok)
      texts[#texts + 1] = tostring(e)
      texts[#texts + 1] = tostring(e.message)
    end
    for _, t in ipairs(texts) do
      assert.is_nil(t:find(token, 1, true), t)
      assert.is_nil(t:find("s3cret", 1, true), t)
    end
    -- nor in anything a pretty printer could reach from the session object
    local seen = {}
    local function walk(v)
      if type(v) == "string" then
        assert.is_nil(v:find(token, 1, true))
        assert.is_nil(v:find("s3cret", 1, true))
      elseif type(v) == "table" and not seen[v] then
        seen[v] = true
        for k, x in pairs(v) do walk(k); walk(x) end
      end
    end
    walk(s)
    walk(tostring(s))
  end)
end)
