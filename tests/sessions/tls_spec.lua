-- https pools: the module trusts a private CA given as ca_file, or in
-- SSL_CERT_FILE or CURL_CA_BUNDLE (as curl, requests and httpx do), and says
-- what to do when it trusts no certificate or the pool speaks plain http.
-- The https pool is a real sesh-pool behind a TLS front (tests/support/
-- tls_front.py), then sesh-pool serving https itself (--tls-cert, --tls-key:
-- the certificate reloaded on SIGHUP, the 102 probe through TLS), each with
-- a certificate from a CA this spec makes; Python's httpx, trusting the same
-- CA, is the other client.
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

-- Python's httpx against an https pool trusting ca: execute, upload,
-- download; and the same pool refused when the system's CAs are trusted.
local function httpx(dir, url, token, ca_file)
  local script = util.write(dir .. "/client.py", [[
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
  local p = io.popen(("/usr/bin/python3 %s %s %s %s 2>&1"):format(q(script), q(url), q(token), q(ca_file)))
  local out = p:read("a")
  assert.is_true(p:close(), out)
  return out
end

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
    assert.equal("42\nhello over tls\nrefused without the CA\n", httpx(pool.dir, front.url, pool.token, ca.ca))
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

describe("sesh-pool --tls-cert --tls-key", function()
  local hp, hca, host, port
  setup(function()
    local dir = P.tmpdir()
    hca = tls.make_ca(dir .. "/tls")
    hp = P.start{ dir = dir, ca_file = hca.ca, args = { "--tls-cert", hca.cert, "--tls-key", hca.key } }
    host, port = hp.endpoint:match("^https://([^:]+):(%d+)$")
  end)
  teardown(function()
    if hp then hp:stop(); hp:cleanup() end
  end)

  -- Waits for a line of the pool's log matching pattern; returns it.
  local function logged(pattern)
    local line
    util.wait(function()
      line = hp:log():match(pattern)
      return line
    end, 20)
    assert(line, "not in the log: " .. pattern .. "\n" .. hp:log())
    return line
  end

  it("says https:// when it starts, and serves the certificate it names in its log", function()
    assert.matches("^sesh%-pool: listening on https://127%.0%.0%.1:%d+ ", hp.line)
    logged("tls: certificate [^\n]*server%.pem %(subject CN=127%.0%.0%.1, valid until %d+%-%d+%-%d+")
    assert.equal(tls.fingerprint(hca.cert), tls.served_fingerprint(host, port))
  end)

  it("speaks TLS 1.2 and 1.3, not 1.1", function()
    assert.equal("TLSv1.3", tls.handshake(host, port, "tls1_3"))
    assert.equal("TLSv1.2", tls.handshake(host, port, "tls1_2"))
    assert.is_nil(tls.handshake(host, port, "tls1_1"))
  end)

  it("is used by the module with ca_file: execute, upload, download", function()
    local s <close> = hp:session{}
    assert.equal(42, s:execute("6 * 7").result)
    s:upload{ name = "over tls/data.bin", data = ("\0\1\2sesh"):rep(100000) }
    assert.equal(("\0\1\2sesh"):rep(100000), s:download("over tls/data.bin"))
    local out, ok = sesh("SSL_CERT_FILE=" .. q(hca.ca), SNIPPET:format(hp.endpoint, hp.token))
    assert.is_true(ok, out)
    assert.equal("42\n", out)
  end)

  it("serves Python's httpx trusting the CA, and is refused without it", function()
    assert.equal("42\nhello over tls\nrefused without the CA\n", httpx(hp.dir, hp.endpoint, hp.token, hca.ca))
  end)

  it("sends its 102 Processing through TLS to a client that half-closed, and answers it", function()
    local body = '{"properties": {"codeInputType": "inline", "executionType": "synchronous", ' ..
                 '"code": "import time\\ntime.sleep(0.5)\\n6 * 7"}}'
    local request = util.write(hp.dir .. "/half.http", ("POST /code/execute?api-version=" ..
      "2024-02-02-preview&identifier=tls-half HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n" ..
      "Content-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s")
      :format(hp.token, #body, body))
    local p = io.popen(("/usr/bin/python3 tests/support/raw_http.py %s %s %s --tls %s --half-close 2>&1")
      :format(host, port, q(request), q(hca.ca)))
    local answer = p:read("a")
    p:close()
    assert.matches("^HTTP/1%.1 102 Processing\r\n\r\nHTTP/1%.1 200 OK", answer)
    assert.matches('"result":42', answer)
  end)

  it("interrupts the code of an https client that went away", function()
    local function run(code, o)
      o = o or {}
      return hp:request{ method = "POST", path = "executions", identifier = "tls-gone",
                         api_version = "2025-10-02-preview", headers = o.headers, timeout = o.timeout,
                         json = { code = code, codeInputType = "Inline", executionType = "Synchronous",
                                  timeoutInSeconds = 30 } }
    end
    assert.equal("Succeeded", run("kept = 1").json.status)
    local ok = pcall(run, "import time\ntime.sleep(60)\nkept = 2",
                     { timeout = 0.5, headers = { ["operation-id"] = "tls-gone-1" } })
    assert.is_false(ok)
    local r
    util.wait(function()
      r = hp:request{ path = "executions/tls-gone-1", identifier = "tls-gone", api_version = "2025-10-02-preview" }
      return r.json and r.json.status ~= "Running"
    end, 20)
    assert.equal("ExecutionAbandoned", r.json.error.code)
    assert.equal(1, run("kept").json.result.executionResult)
  end)

  it("reads its certificate again on SIGHUP: new connections get the new one, open ones go on; " ..
     "a bad one is kept out", function()
    local before = hp:execute("1")
    assert.equal(200, before.status)
    -- renewed in place, as a certificate manager does, then SIGHUP
    local renewed = tls.server_cert(hca, "renewed", "sesh-renewed")
    assert(os.execute(("cp %s %s && cp %s %s"):format(q(renewed.cert), q(hca.cert), q(renewed.key), q(hca.key))))
    assert(os.execute("kill -HUP " .. hp.pid))
    logged("tls: certificate reloaded %(subject CN=sesh%-renewed, valid until [^)]*%): new connections get it")
    assert.equal(tls.fingerprint(renewed.cert), tls.served_fingerprint(host, port))
    local after = hp:execute("6 * 7")
    assert.equal(200, after.status)
    assert.equal(0, after.connects)             -- on the connection opened before the reload
    assert.is_true(hp:alive())

    -- a key that is not the certificate's: refused, the renewed one stays
    local other = tls.server_cert(hca, "other")
    assert(os.execute(("cp %s %s"):format(q(other.key), q(hca.key))))
    assert(os.execute("kill -HUP " .. hp.pid))
    logged("tls: certificate not reloaded, the one in use stays: [^\n]*server%.pem and [^\n]*server%.key " ..
           "do not make a certificate with its key")
    assert.equal(tls.fingerprint(renewed.cert), tls.served_fingerprint(host, port))
    local s <close> = hp:session{ id = "tls-after-bad" }
    assert.equal(42, s:execute("6 * 7").result)
  end)
end)

describe("sesh-pool's TLS options", function()
  local dir, ca
  setup(function()
    dir = P.tmpdir()
    ca = tls.make_ca(dir .. "/tls")
  end)
  teardown(function() os.execute("rm -rf " .. q(dir)) end)

  local function start(args)
    args[#args + 1] = "--ready-sessions"
    args[#args + 1] = "0"
    local pid, out, err = P.spawn(args, dir)
    local line, why = P.wait_line(pid, out, err, 20)
    return line, why or util.read(err), pid
  end

  it("refuses to start with a key that is not the certificate's, or a unix socket", function()
    local other = tls.server_cert(ca, "other")
    local line, err = start{ "--state-dir", dir .. "/state", "--tls-cert", ca.cert, "--tls-key", other.key }
    assert.is_nil(line)
    assert.matches("sesh%-pool: [^\n]*server%.pem and [^\n]*other%.key do not make a certificate with its key", err)
    line, err = start{ "--state-dir", dir .. "/state", "--socket", dir .. "/pool.sock",
                       "--tls-cert", ca.cert, "--tls-key", ca.key }
    assert.is_nil(line)
    assert.matches("a unix socket never leaves the host", err)
  end)

  it("warns in its log when it listens beyond loopback without TLS", function()
    local token = util.write(dir .. "/token", "t0ken\n")
    local line, _, pid = start{ "--state-dir", dir .. "/state", "--listen", "0.0.0.0:0", "--token-file", token }
    assert(line, "did not start")
    local log
    util.wait(function()
      log = util.read(dir .. "/stderr") or ""
      return log:match("listening on")
    end, 20)
    os.execute("kill " .. pid)
    util.wait(function() return not P.alive(pid) end, 20)
    assert.matches("warning: %-%-listen 0%.0%.0%.0:0 is reachable beyond this host and speaks plain HTTP", log)
  end)
end)
