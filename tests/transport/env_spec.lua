-- What comes from outside the request: TLS trust, proxies from the environment.
local http = require "sessions.http"
local cjson = require "cjson"
local support = require "support.stub_http"

local SESH = (os.getenv("SESH_BUILD") or "build") .. "/bin/sesh"

-- Runs Lua code in a fresh host with extra environment; returns its output.
local function host(env, code)
  local path = support.tmpname("env.lua")
  local f = assert(io.open(path, "w")); f:write(code); f:close()
  local out = io.popen(string.format("env %s %s %s 2>&1", env, SESH, path)):read("a")
  os.remove(path)
  return out
end

describe("TLS", function()
  local dir = support.tmpname("tls")
  local cert, key = dir .. "/cert.pem", dir .. "/key.pem"
  local stub

  setup(function()
    os.execute("mkdir -p " .. dir)
    assert(os.execute(string.format(
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 " ..
      "-addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s >/dev/null 2>&1", key, cert)))
    stub = support.start{ tls = { cert = cert, key = key } }
  end)
  teardown(function()
    stub:stop()
    os.execute("rm -rf " .. dir)
  end)

  it("verifies certificates by default", function()
    local c = http.client{ timeout = 5 }
    local ok, err = pcall(c.request, c, { url = stub.url .. "/hello" })
    assert.is_false(ok)
    assert.are.equal("transport", err.kind)
    assert.are.equal(60, err.code)             -- CURLE_PEER_FAILED_VERIFICATION
  end)

  it("trusts a server whose certificate is in ca_file", function()
    local c = http.client{ timeout = 5, ca_file = cert }
    local res = c:request{ url = stub.url .. "/hello" }
    assert.are.equal("hello world", res.body)
  end)
end)

describe("proxies from the environment", function()
  local stub
  setup(function() stub = support.start() end)
  teardown(function() stub:stop() end)

  it("sends requests through http_proxy", function()
    -- the stub answers as a proxy would: the request line holds the whole URL;
    -- no traffic leaves this machine (.invalid is never resolved: the proxy is asked)
    local out = host("http_proxy=" .. stub.url, [[
      local http = require "sessions.http"
      local res = http.client{ timeout = 5 }:request{ url = "http://sesh-test.invalid/echo" }
      print(res.body)
    ]])
    local echo = cjson.decode(out)
    assert.are.equal("http://sesh-test.invalid/echo", echo.path)
    assert.are.equal("sesh-test.invalid", echo.headers.host)
  end)

  it("never sends loopback requests through a proxy", function()
    local out = host("http_proxy=http://127.0.0.1:1 HTTP_PROXY=http://127.0.0.1:1", string.format([[
      local http = require "sessions.http"
      print(http.client{ timeout = 5 }:request{ url = %q }.body)
    ]], stub.url .. "/hello"))
    assert.matches("hello world", out)
  end)
end)

describe("child processes", function()
  it("inherit no socket or file of the transport", function()
    local stub = support.start()
    local sock = support.tmpname("cloexec.sock")
    local ustub = support.start{ unix = sock }
    local big = support.tmpname("cloexec.bin")
    local out = host("", string.format([[
      local http = require "sessions.http"
      local c = http.client{ timeout = 5 }
      c:request{ url = %q }
      http.client{ unix_socket = %q, timeout = 5 }:request{ url = "http://localhost/hello" }
      -- a request that is still streaming its answer to a file when the child starts
      local results = http.run{
        function() return c:request{ url = %q, output_file = %q, progress = false }.status end,
        function()
          c:request{ url = %q }
          local p = io.popen("ls -l /proc/$$/fd")
          local fds = p:read("a")
          p:close()
          return fds
        end,
      }
      io.write(results[2])
    ]], stub.url .. "/hello", sock, stub.url .. "/drip?bytes=20&s=1", big, stub.url .. "/hello"))
    stub:stop(); ustub:stop()
    os.remove(sock); os.remove(big)
    assert.matches("0 %->", out)                  -- the listing worked
    assert.is_nil(out:find("socket:", 1, true), out)
    assert.is_nil(out:find(".sesh-", 1, true), out)
  end)
end)
