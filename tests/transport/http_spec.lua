-- sessions.http against a scripted local server: answers, errors, retries, timeouts.
local http = require "sessions.http"
local cjson = require "cjson"
local support = require "support.stub_http"

local uptime = require("sessions.core").monotonic     -- the one clock of every timing

local function raises(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return err
end

describe("sessions.http", function()
  local stub, c

  setup(function()
    stub = support.start()
    c = http.client{ timeout = 10 }
  end)

  teardown(function()
    c:close()
    stub:stop()
  end)

  it("returns status, lower-case headers and body", function()
    local res = c:request{ url = stub.url .. "/hello" }
    assert.are.equal(200, res.status)
    assert.are.equal("hello world", res.body)
    assert.are.equal("yes", res.headers["x-test"])
    assert.are.equal("11", res.headers["content-length"])
    assert.is_nil(res.headers["X-Test"])
    assert.are.equal(1, res.attempts)
  end)

  it("sends method, headers and body, with the sesh User-Agent", function()
    local res = c:request{ method = "PUT", url = stub.url .. "/echo", body = "a\0b",
                           headers = { ["Content-Type"] = "text/plain", ["X-One"] = 1 } }
    local echo = cjson.decode(res.body)
    assert.are.equal("PUT", echo.method)
    assert.are.equal("a\0b", echo.body)
    assert.are.equal("text/plain", echo.headers["content-type"])
    assert.are.equal("1", echo.headers["x-one"])
    assert.are.equal("3", echo.headers["content-length"])
    assert.are.equal("sesh/" .. http.version .. " (Language=Lua)", echo.headers["user-agent"])
    assert.matches("^sesh/%d+%.%d+%.%d+ %(Language=Lua%)$", http.user_agent)
  end)

  it("defaults to POST with a body and GET without", function()
    assert.are.equal("POST", cjson.decode(c:request{ url = stub.url .. "/echo", body = "x" }.body).method)
    assert.are.equal("GET", cjson.decode(c:request{ url = stub.url .. "/echo" }.body).method)
    local del = cjson.decode(c:request{ method = "DELETE", url = stub.url .. "/echo" }.body)
    assert.are.equal("DELETE", del.method)
    assert.are.equal("", del.body)
  end)

  it("reuses the connection (keep-alive)", function()
    local first = cjson.decode(c:request{ url = stub.url .. "/echo" }.body).peer
    for _ = 1, 5 do
      assert.are.equal(first, cjson.decode(c:request{ url = stub.url .. "/echo" }.body).peer)
    end
  end)

  it("returns HTTP errors as answers, not raised", function()
    local res = c:request{ url = stub.url .. "/status/404" }
    assert.are.equal(404, res.status)
    assert.are.equal("status 404", res.body)
  end)

  it("raises a transport error table on a refused connection", function()
    local err = raises(c.request, c, { url = "http://127.0.0.1:1/x" })
    assert.are.equal("table", type(err))
    assert.are.equal("transport", err.kind)
    assert.are.equal(7, err.code)                 -- CURLE_COULDNT_CONNECT
    assert.matches("GET http://127.0.0.1:1/x", err.message, 1, true)
    assert.are.equal(err.message, tostring(err))
  end)

  it("never puts a token or Authorization value into an error", function()
    local err = raises(c.request, c, {
      url = "http://user:hunter2@127.0.0.1:1/x?identifier=SECRET0&token=SECRET1&sig=SECRET2" ..
            "&api-version=2024-02-02-preview",
      headers = { Authorization = "Bearer SECRET3" } })
    local msg = tostring(err)
    assert.is_nil(msg:find("SECRET", 1, true), msg)
    assert.is_nil(msg:find("hunter2", 1, true), msg)
    assert.matches("http://127.0.0.1:1/x?identifier=***&token=***&sig=***" ..
                   "&api-version=2024-02-02-preview", msg, 1, true)
  end)

  it("raises on a truncated body (Content-Length larger than sent)", function()
    local err = raises(c.request, c, { url = stub.url .. "/truncated" })
    assert.are.equal("transport", err.kind)
    assert.are.equal(18, err.code)                -- CURLE_PARTIAL_FILE
  end)

  it("raises on a connection reset before an answer", function()
    local err = raises(c.request, c, { url = stub.url .. "/reset" })
    assert.are.equal("transport", err.kind)
    assert.truthy(err.code == 52 or err.code == 56, "code " .. tostring(err.code))
  end)

  it("times out a server slower than the timeout", function()
    local t0 = uptime()
    local err = raises(c.request, c, { url = stub.url .. "/slow?s=5", timeout = 0.5 })
    assert.are.equal("transport", err.kind)
    assert.are.equal(28, err.code)                -- CURLE_OPERATION_TIMEDOUT
    assert.is_true(uptime() - t0 < 4)
  end)

  it("gives up connecting after connect_timeout, apart from timeout", function()
    local hole = support.start{ blackhole = true }
    local t0 = uptime()
    local ok, err = pcall(c.request, c, { url = hole.url .. "/x", connect_timeout = 0.5, timeout = 20 })
    local elapsed = uptime() - t0
    local ok2, err2 = pcall(c.request, c, { url = hole.url .. "/x", connect_timeout = 0.3,
                                            retry = { max = 2, base = 0.01 } })
    hole:stop()
    assert.is_false(ok)
    assert.are.equal(28, err.code)
    assert.matches("onnect", err.message)
    assert.is_true(elapsed < 5, "took " .. elapsed)
    -- nothing was sent, so even a POST-like request may be tried again
    assert.is_false(ok2)
    assert.are.equal(2, err2.attempts)
  end)

  it("aborts a transfer slower than low_speed_limit", function()
    local err = raises(c.request, c, { url = stub.url .. "/drip?bytes=40&s=20",
                                       low_speed_limit = 100, low_speed_time = 1 })
    assert.are.equal(28, err.code)
  end)

  it("caps in-memory bodies with max_body", function()
    local err = raises(c.request, c, { url = stub.url .. "/big?mb=2", max_body = 1000000 })
    assert.are.equal("too_large", err.kind)
    assert.matches("max_body", err.message)
    assert.are.equal(2 * 2^20, #c:request{ url = stub.url .. "/big?mb=2" }.body)
  end)

  it("caps the answer's headers", function()
    assert.are.equal(200, c:request{ url = stub.url .. "/many-headers?n=100" }.status)
    local err = raises(c.request, c, { url = stub.url .. "/many-headers?n=2000" })
    assert.are.equal("too_large", err.kind)
    assert.matches("headers larger", err.message)
  end)

  it("rejects bad requests with errors naming the problem", function()
    assert.matches("url", tostring(raises(c.request, c, {})))
    assert.matches("bad method", tostring(raises(c.request, c, { method = "G T", url = stub.url })))
    assert.matches("one of body", tostring(raises(c.request, c,
      { url = stub.url, body = "x", body_file = "/etc/hostname" })))
    assert.matches("line break", tostring(raises(c.request, c,
      { url = stub.url, headers = { X = "a\r\nInjected: yes" } })))
    assert.matches("timeout", tostring(raises(c.request, c, { url = stub.url, timeout = "soon" })))
    local scheme = raises(c.request, c, { url = "file:///etc/hostname" })
    assert.are.equal("transport", scheme.kind)
    assert.are.equal(1, scheme.code)              -- CURLE_UNSUPPORTED_PROTOCOL
    local err = raises(c.request, c, { url = stub.url .. "/save", body_file = "/nonexistent/x" })
    assert.are.equal("file", err.kind)
    assert.matches("/nonexistent/x", err.message, 1, true)
  end)

  it("refuses a closed client", function()
    local k = http.client()
    k:close()
    assert.matches("closed", tostring(raises(k.request, k, { url = stub.url .. "/hello" })))
    k:close()                                     -- twice is fine
  end)

  it("closes with <close>", function()
    do
      local k <close> = http.client()
      assert.are.equal(200, k:request{ url = stub.url .. "/hello" }.status)
    end
  end)

  describe("retries", function()
    it("retries 503 then succeeds, counting attempts", function()
      local res = c:request{ url = stub.url .. "/flaky?key=r1&n=2&code=503",
                             retry = { max = 4, base = 0.01, statuses = { 503 } } }
      assert.are.equal(200, res.status)
      assert.are.equal("ok after 3", res.body)
      assert.are.equal(3, res.attempts)
    end)

    it("accepts statuses as a set", function()
      local res = c:request{ url = stub.url .. "/flaky?key=r2&n=1&code=502",
                             retry = { max = 2, base = 0.01, statuses = { [502] = true } } }
      assert.are.equal(200, res.status)
      assert.are.equal(2, res.attempts)
    end)

    it("gives up after max attempts and returns the last answer", function()
      local res = c:request{ url = stub.url .. "/flaky?key=r3&n=9&code=503",
                             retry = { max = 3, base = 0.01, statuses = { 503 } } }
      assert.are.equal(503, res.status)
      assert.are.equal(3, res.attempts)
      assert.are.equal("3", c:request{ url = stub.url .. "/count?key=r3" }.body)
    end)

    it("does not retry a status the caller did not name", function()
      local res = c:request{ url = stub.url .. "/status/500?key=r4",
                             retry = { max = 4, base = 0.01, statuses = { 429, 503 } } }
      assert.are.equal(500, res.status)
      assert.are.equal(1, res.attempts)
      assert.are.equal("1", c:request{ url = stub.url .. "/count?key=r4" }.body)
    end)

    it("does not retry without a retry table", function()
      local res = c:request{ url = stub.url .. "/flaky?key=r5&n=1&code=503" }
      assert.are.equal(503, res.status)
      assert.are.equal(1, res.attempts)
    end)

    it("honours Retry-After in seconds", function()
      local t0 = uptime()
      local res = c:request{ url = stub.url .. "/throttle?key=r6&n=1&after=1",
                             retry = { max = 3, base = 0.01, statuses = { 429 } } }
      assert.are.equal(200, res.status)
      assert.are.equal(2, res.attempts)
      assert.is_true(uptime() - t0 >= 0.9, "waited " .. (uptime() - t0))
    end)

    it("honours Retry-After as an HTTP date", function()
      local t0 = uptime()
      local res = c:request{ url = stub.url .. "/throttle?key=r6d&n=1&after=2&date=1",
                             retry = { max = 3, base = 0.01, statuses = { 429 } } }
      assert.are.equal(200, res.status)
      assert.are.equal(2, res.attempts)
      assert.is_true(uptime() - t0 >= 0.9, "waited " .. (uptime() - t0))
    end)

    it("does not wait past the total budget for a long Retry-After", function()
      local t0 = uptime()
      local res = c:request{ url = stub.url .. "/throttle?key=r7&n=1&after=30",
                             retry = { max = 3, total = 2, base = 0.01, statuses = { 429 } } }
      assert.are.equal(429, res.status)
      assert.are.equal(1, res.attempts)
      assert.is_true(uptime() - t0 < 5)
    end)

    it("retries a refused connection (nothing was sent) and reports attempts", function()
      local err = raises(c.request, c, { url = "http://127.0.0.1:1/x",
                                         retry = { max = 3, base = 0.01, statuses = {} } })
      assert.are.equal("transport", err.kind)
      assert.are.equal(3, err.attempts)
    end)

    it("does not retry a reset after sending unless idempotent", function()
      local err = raises(c.request, c, { method = "POST", url = stub.url .. "/reset", body = "x",
                                         retry = { max = 3, base = 0.01, statuses = { 503 } } })
      assert.are.equal(1, err.attempts)
      err = raises(c.request, c, { method = "POST", url = stub.url .. "/reset", idempotent = true,
                                   retry = { max = 3, base = 0.01 } })
      assert.are.equal(3, err.attempts)
      err = raises(c.request, c, { method = "POST", url = stub.url .. "/reset",
                                   retry = { max = 2, base = 0.01, idempotent = true } })
      assert.are.equal(2, err.attempts)
      -- GET is idempotent unless the caller says otherwise
      assert.are.equal(3, raises(c.request, c, { url = stub.url .. "/reset",
                                                 retry = { max = 3, base = 0.01 } }).attempts)
      assert.are.equal(1, raises(c.request, c, { url = stub.url .. "/reset", idempotent = false,
                                                 retry = { max = 3, base = 0.01 } }).attempts)
    end)

    it("never lets libcurl re-send a POST when a kept-alive connection dies", function()
      -- libcurl re-sends once, silently, when a reused connection closes unanswered;
      -- a POST (an execute!) must not ride a reused connection for that reason
      c:request{ url = stub.url .. "/hello" }
      local err = raises(c.request, c, { method = "POST", url = stub.url .. "/reset?key=k1",
                                         body = "print(1)" })
      assert.are.equal("transport", err.kind)
      assert.are.equal("1", c:request{ url = stub.url .. "/count?key=k1" }.body)
    end)

    it("reuses the kept-alive connection for POSTs too", function()
      local peer = function(req)
        req.url = stub.url .. "/echo"
        return cjson.decode(c:request(req).body).peer
      end
      local first = peer{}
      assert.are.equal(first, peer{ method = "PUT" })
      assert.are.equal(first, peer{ method = "POST", body = "x" })
      assert.are.equal(first, peer{ method = "PATCH", body = "x" })
      assert.are.equal(first, peer{ method = "POST", body = "x", idempotent = true })
    end)

    it("sends 100 POSTs over one TCP connection", function()
      local count = function() return tonumber(c:request{ url = stub.url .. "/connections" }.body) end
      local before, connects = count(), 0
      for i = 1, 100 do
        local res = c:request{ method = "POST", url = stub.url .. "/echo", body = "6*7 #" .. i }
        assert.are.equal("6*7 #" .. i, cjson.decode(res.body).body)
        connects = connects + res.connects
      end
      assert.is_true(count() - before <= 1, "connections opened: " .. (count() - before))
      assert.is_true(connects <= 1, "res.connects summed: " .. connects)
    end)

    it("fails clearly, sent once, when a reused connection closes after a POST", function()
      -- the server reads the whole request, then closes without an answer: libcurl
      -- would send it again on a fresh connection; it must not, and must say why
      c:request{ url = stub.url .. "/hello" }
      local err = raises(c.request, c, { method = "POST", url = stub.url .. "/drop?key=d1",
                                         body = "print(1)",
                                         retry = { max = 3, base = 0.01, statuses = { 503 } } })
      assert.are.equal("transport", err.kind)
      assert.are.equal(1, err.attempts)
      assert.matches("may or may not have run", err.message)
      assert.matches("not retried", err.message)
      assert.are.equal("1", c:request{ url = stub.url .. "/count?key=d1" }.body)
      -- the same for a body streamed from a file
      local path = support.tmpname("drop.txt")
      local f = assert(io.open(path, "wb")); f:write("print(2)"); f:close()
      err = raises(c.request, c, { method = "POST", url = stub.url .. "/drop?key=d2",
                                   body_file = path })
      os.remove(path)
      assert.matches("may or may not have run", err.message)
      assert.are.equal("1", c:request{ url = stub.url .. "/count?key=d2" }.body)
    end)

    it("re-sends an idempotent request when a reused connection closes unanswered", function()
      c:request{ url = stub.url .. "/hello" }
      raises(c.request, c, { method = "PUT", url = stub.url .. "/drop?key=d3", body = "x" })
      -- libcurl's own retry on a fresh connection, then the drop again: two hits
      assert.are.equal("2", c:request{ url = stub.url .. "/count?key=d3" }.body)
    end)

    it("does not fail when the server closed an idle kept-alive connection", function()
      local res = c:request{ method = "POST", url = stub.url .. "/idle-close?s=0.1&key=ic1", body = "x" }
      assert.are.equal(200, res.status)
      assert.are.equal("closed ic1", stub:said())   -- the server has closed it
      res = c:request{ method = "POST", url = stub.url .. "/echo", body = "6*7" }
      assert.are.equal("6*7", cjson.decode(res.body).body)
      assert.are.equal(1, res.connects)          -- a new one, opened without any error
    end)
  end)

  describe("multipart", function()
    it("sends parts with names, filenames and content types", function()
      local path = support.tmpname("part.csv")
      local f = assert(io.open(path, "wb")); f:write("a,b\n1,2\n"); f:close()
      local res = c:request{ url = stub.url .. "/multipart", multipart = {
        { name = "file", filename = "data.json", data = '{"x":1}', content_type = "application/json" },
        { name = "file2", file = path, content_type = "text/csv" },
        { name = "file3", file = path, filename = "/mnt/data/renamed.csv" },
      } }
      os.remove(path)
      assert.are.equal(200, res.status)
      local parts = cjson.decode(res.body)
      assert.are.equal(3, #parts)
      assert.are.same({ name = "file", filename = "data.json", content_type = "application/json",
                        size = 7, data = '{"x":1}' }, parts[1])
      assert.are.equal(path:match("[^/]+$"), parts[2].filename)
      assert.are.equal("text/csv", parts[2].content_type)
      assert.are.equal("a,b\n1,2\n", parts[2].data)
      assert.are.equal("/mnt/data/renamed.csv", parts[3].filename)
    end)

    it("re-sends in-memory parts on a retry", function()
      local data = ("0123456789"):rep(1000)
      local res = c:request{ url = stub.url .. "/flaky?key=m1&n=1&code=503",
                             multipart = { { name = "file", filename = "d.txt", data = data } },
                             retry = { max = 2, base = 0.01, statuses = { 503 } } }
      assert.are.equal(2, res.attempts)
      assert.is_true(tonumber(res.headers["x-body-bytes"]) > #data)
    end)

    it("keeps bodies alive when the request table changes while it waits", function()
      -- long strings are not interned: the expected copies are other objects
      local stamp = tostring(os.time())
      local req = { url = stub.url .. "/multipart",
                    multipart = { { name = "a", data = ("x"):rep(2000) .. stamp } } }
      local body_req = { url = stub.url .. "/echo", body = ("y"):rep(2000) .. stamp }
      local want_a, want_body = ("x"):rep(2000) .. stamp, ("y"):rep(2000) .. stamp
      local results = http.run{
        function() return c:request(req).body end,
        function() return c:request(body_req).body end,
        function()
          req.multipart[1].data, body_req.body = nil, nil
          collectgarbage(); collectgarbage()
          return true
        end,
      }
      assert.are.equal(want_a, cjson.decode(results[1])[1].data)
      assert.are.equal(want_body, cjson.decode(results[2]).body)
    end)

    it("names a bad part", function()
      assert.matches("multipart%[2%]", tostring(raises(c.request, c, { url = stub.url,
        multipart = { { name = "a", data = "x" }, { name = "b" } } })))
      local err = raises(c.request, c, { url = stub.url,
        multipart = { { name = "a", file = "/nonexistent/f" } } })
      assert.are.equal("file", err.kind)
    end)
  end)
end)

describe("sessions.http over a unix socket", function()
  it("talks HTTP through unix_socket", function()
    local sock = support.tmpname("stub.sock")
    local stub = support.start{ unix = sock }
    local c = http.client{ unix_socket = sock, timeout = 5 }
    local ok, res = pcall(c.request, c, { url = "http://localhost/echo", body = "over unix" })
    c:close()
    stub:stop()
    os.remove(sock)
    assert.is_true(ok, tostring(res))
    assert.are.equal(200, res.status)
    assert.are.equal("over unix", cjson.decode(res.body).body)
  end)

  it("fails clearly when nothing listens on the socket", function()
    local c = http.client{ unix_socket = "/nonexistent/sock" }
    local ok, err = pcall(c.request, c, { url = "http://localhost/x" })
    assert.is_false(ok)
    assert.are.equal("transport", err.kind)
    assert.are.equal(7, err.code)
  end)
end)
