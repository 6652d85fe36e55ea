-- https pools: the module trusts a private CA given as ca_file, or in
-- SSL_CERT_FILE or CURL_CA_BUNDLE (as curl, requests and httpx do), and says
-- what to do when it trusts no certificate or the pool speaks plain http.
-- The https pool is a real sesh-pool behind a TLS front (tests/support/
-- tls_front.py) with a certificate from a CA this spec makes; Python's httpx,
-- trusting the same CA, is the other client.
local sessions = require "sessions"
local P = require "support.pool"
local tls = require "support.tls"
local util = require "support.util"

local q = util.quote
local pool, ca, front

setup(function()
  pool = P.start{}
  ca = tls.make_ca(pool.dir .. "/tls")
  front = tls.front{ cert = ca.cert, key = ca.key, to = pool.endpoint:match("^http://(.*)$") }
end)
teardown(function()
  if front then front:stop() end
  if pool then pool:stop(); pool:cleanup() end
end)

-- Runs a Lua snippet in a fresh sesh with extra environment; returns output, ok.
local function sesh(env, code)
  local file = util.write(pool.dir .. "/snippet-" .. math.random(1e9) .. ".lua", code)
  local p = io.popen(("env -u SSL_CERT_FILE -u CURL_CA_BUNDLE %s %s %s 2>&1"):format(
    env, q(util.SESH), q(file)))
  local out = p:read("a")
  return out, p:close()
end

local SNIPPET = [[
local s <close> = require("sessions").new{ endpoint = %q, token = %q }
print(s:execute("6 * 7").result)
]]

describe("an https pool", function()
  it("is used with the CA given as ca_file: execute, upload, download", function()
    local s <close> = sessions.new{ endpoint = front.url, token = pool.token, ca_file = ca.ca }
    assert.equal(42, s:execute("6 * 7").result)
    s:upload{ name = "over tls/data.bin", data = ("\0\1\2sesh"):rep(1000) }
    assert.equal(("\0\1\2sesh"):rep(1000), s:download("over tls/data.bin"))
    assert.equal(7000, s:file("over tls/data.bin").size)
  end)

  it("is used with the CA in SSL_CERT_FILE or CURL_CA_BUNDLE", function()
    for _, var in ipairs{ "SSL_CERT_FILE", "CURL_CA_BUNDLE" } do
      local out, ok = sesh(var .. "=" .. q(ca.ca), SNIPPET:format(front.url, pool.token))
      assert.is_true(ok, var .. ": " .. out)
      assert.equal("42\n", out, var)
    end
  end)

  it("is refused without the CA, and the error says how to trust it", function()
    local out, ok = sesh("", SNIPPET:format(front.url, pool.token))
    assert.is_falsy(ok)
    assert.matches("sessions: execute failed", out, 1, true)
    assert.matches("the server's certificate is not trusted: name the CA that signed it " ..
                   "with ca_file, or in SSL_CERT_FILE or CURL_CA_BUNDLE", out, 1, true)
    local s = sessions.new{ endpoint = front.url, token = pool.token }
    local done, e = pcall(s.execute, s, "1")
    assert.is_false(done)
    assert.equal("transport", e.kind)
    assert.equal(60, e.code)                           -- CURLE_PEER_FAILED_VERIFICATION
    s:close()
  end)

  it("serves Python's httpx trusting the same CA", function()
    local script = util.write(pool.dir .. "/client.py", [[
import sys, httpx
url, token, ca = sys.argv[1:4]
with httpx.Client(base_url=url, verify=ca, headers={"Authorization": "Bearer " + token}) as c:
    q = {"api-version": "2025-10-02-preview", "identifier": "httpx-over-tls"}
    r = c.post("/executions", params=q, json={"codeInputType": "Inline",
               "executionType": "Synchronous", "code": "6 * 7", "timeoutInSeconds": 60})
    r.raise_for_status()
    print(r.json()["result"]["executionResult"])
    r = c.post("/files", params=q, files={"file": ("hello.txt", b"hello over tls")})
    r.raise_for_status()
    print(c.get("/files/hello.txt/content", params=q).text)
try:
    httpx.get(url + "/health")              # the system's CAs do not know ours
    print("trusted without the CA")
except httpx.ConnectError as e:
    print("refused without the CA")
]])
    local p = io.popen(("/usr/bin/python3 %s %s %s %s 2>&1"):format(q(script), q(front.url),
                       q(pool.token), q(ca.ca)))
    local out = p:read("a")
    assert.is_true(p:close(), out)
    assert.equal("42\nhello over tls\nrefused without the CA\n", out)
  end)
end)

describe("an https:// endpoint on a plain-http pool", function()
  it("fails with a hint to use http://", function()
    local s = sessions.new{ endpoint = pool.endpoint:gsub("^http:", "https:"), token = pool.token }
    local ok, e = pcall(s.execute, s, "1")
    assert.is_false(ok)
    assert.equal("transport", e.kind)
    assert.equal(35, e.code)                           -- CURLE_SSL_CONNECT_ERROR
    assert.matches("the server did not complete a TLS handshake: if it serves plain http " ..
                   "(as sesh-pool does unless it is given a certificate), use an http:// URL",
                   tostring(e), 1, true)
    s:close()
  end)
end)
