-- Bad requests: each gets the right status and a JSON error body with its
-- code in x-ms-error-code, and the pool keeps serving.
local support = require "support.pool"
local util = require "support.util"

local V1, V2 = "2024-02-02-preview", "2025-10-02-preview"

describe("sesh-pool, bad requests", function()
  local pool
  setup(function() pool = support.start{} end)
  teardown(function() pool:stop(); pool:cleanup() end)

  local function is_error(res, status, code)
    assert.are.equal(status, res.status)
    assert.is_table(res.json, "no JSON error body")
    assert.are.equal(code, res.json.error.code)
    assert.is_string(res.json.error.message)
    assert.are.equal(code, res.headers["x-ms-error-code"])
  end

  local function still_serving()
    local _, p = pool:execute("6 * 7", { identifier = "err-alive" })
    assert.are.equal(42, p and p.result)
  end

  it("answers malformed JSON with 400", function()
    local res = pool:request{ method = "POST", path = "code/execute", identifier = "err-json",
                              headers = { ["Content-Type"] = "application/json" }, body = '{"properties": {"code": ' }
    is_error(res, 400, "InvalidRequestBody")
    assert.matches("not valid JSON", res.json.error.message)
    res = pool:request{ method = "POST", path = "code/execute", identifier = "err-json",
                        headers = { ["Content-Type"] = "application/json" }, body = "[1, 2]" }
    is_error(res, 400, "InvalidRequestBody")
    still_serving()
  end)

  it("answers missing or mistyped fields with 400 naming the field", function()
    local cases = {
      { V1, { properties = { codeInputType = "inline" } }, "code" },
      { V1, { code = "1" }, "properties" },
      { V1, { properties = { code = 42 } }, "code" },
      { V1, { properties = { code = "1", timeoutInSeconds = "soon" } }, "timeoutInSeconds" },
      { V1, { properties = { code = "1", codeInputType = "carrier-pigeon" } }, "codeInputType" },
      { V1, { properties = { code = "1", executionType = "asynchronous" } }, "executionType" },
      { V2, { code = "1", codeInputType = "Inline", executionType = "Synchronous" }, "timeoutInSeconds" },
      { V2, { code = "1", timeoutInSeconds = 10, outputStreamsMaxLength = -5 }, "outputStreamsMaxLength" },
      { V2, { code = "1", timeoutInSeconds = 10, returnJupyterFormatExecutionResult = "yes" },
        "returnJupyterFormatExecutionResult" },
      { V2, { code = "!!!", codeInputType = "InlineBase64", timeoutInSeconds = 10 }, "code" },
    }
    for i, c in ipairs(cases) do
      local res = pool:request{ method = "POST", path = c[1] == V1 and "code/execute" or "executions",
                                identifier = "err-fields", api_version = c[1], json = c[2] }
      assert.are.equal(400, res.status, "case " .. i)
      assert.are.equal(c[3], res.json.error.target, "case " .. i)
    end
    still_serving()
  end)

  it("answers a missing or unknown api-version with 400", function()
    local res = pool:request{ path = "files", identifier = "err-version", api_version = "1999-01-01" }
    is_error(res, 400, "UnsupportedApiVersion")
    assert.matches("2025%-10%-02%-preview", res.json.error.message)
    res = pool:request{ path = "files", identifier = "err-version", api_version = false }
    is_error(res, 400, "MissingApiVersionParameter")
  end)

  it("answers bad or missing identifiers with 400", function()
    for _, id in ipairs{ "abc", string.rep("a", 129), "has space", "sessi\195\179n", "tab\there", "back\\slash" } do
      local res = pool:request{ path = "files", identifier = id }
      is_error(res, 400, "InvalidIdentifier")
    end
    local res = pool:request{ path = "files", identifier = false }
    is_error(res, 400, "MissingIdentifier")
    -- the longest and oddest valid ones work
    local ok = pool:request{ path = "files", identifier = string.rep("z", 128) }
    assert.are.equal(200, ok.status)
    ok = pool:request{ path = "files", identifier = "_|}{[]:\";'<>?/.,@#$%^&*()-+=!~`" }
    assert.are.equal(200, ok.status)
  end)

  it("answers a body larger than allowed with 413", function()
    local big = string.rep("#", 9 * 1024 * 1024)
    local res = pool:request{ method = "POST", path = "code/execute", identifier = "err-big",
                              json = { properties = { code = big } } }
    is_error(res, 413, "PayloadTooLarge")
    still_serving()
  end)

  it("answers an upload without a `file` part with 400, and a non-multipart one with 415", function()
    local res = pool:request{ method = "POST", path = "files/upload", identifier = "err-upload",
                              multipart = { { name = "data", filename = "a.txt", data = "hello" } } }
    is_error(res, 400, "MissingFile")
    res = pool:request{ method = "POST", path = "files/upload", identifier = "err-upload",
                        headers = { ["Content-Type"] = "application/json" }, body = "{}" }
    is_error(res, 415, "UnsupportedMediaType")
    local list = pool:request{ path = "files", identifier = "err-upload" }
    assert.are.same({}, list.json.value)
  end)

  it("answers a 10 KB path with 414", function()
    local res = pool:request{ path = "files/content/" .. string.rep("a", 10240), identifier = "err-long" }
    is_error(res, 414, "UriTooLong")
    still_serving()
  end)

  it("refuses file names that climb out of /mnt/data with 400", function()
    for _, name in ipairs{ "..%2F..%2Fetc%2Fpasswd", "a%2F..%2F..%2Fb", "%2Fetc%2Fpasswd" } do
      local res = pool:request{ path = "files/content/" .. name, identifier = "err-names" }
      assert.are.equal(400, res.status, name)
      assert.are.equal("InvalidFileName", res.json.error.code, name)
    end
    for _, name in ipairs{ "../escape.txt", "/etc/cron.d/x", "a/../../x" } do
      local res = pool:request{ method = "POST", path = "files/upload", identifier = "err-names",
                                multipart = { { name = "file", filename = name, data = "x" } } }
      assert.are.equal(400, res.status, name)
    end
    local res = pool:request{ path = "files", query = { { "identifier", "err-names" }, { "api-version", V2 },
                                                        { "path", "../.." } } }
    is_error(res, 400, "InvalidFileName")
  end)

  it("answers unknown operations with 404 and wrong methods with 405", function()
    local res = pool:request{ path = "nothing/here", identifier = "err-route" }
    is_error(res, 404, "OperationNotFound")
    res = pool:request{ method = "POST", path = "executions", identifier = "err-route", api_version = V1,
                        json = { code = "1" } }
    is_error(res, 404, "OperationNotFound")
    assert.matches("second API generation", res.json.error.message)
    res = pool:request{ method = "DELETE", path = "code/execute", identifier = "err-route" }
    is_error(res, 405, "MethodNotAllowed")
    assert.are.equal("POST", res.headers["allow"])
  end)

  it("answers an execute whose body is not JSON by its type with 415", function()
    local res = pool:request{ method = "POST", path = "code/execute", identifier = "err-type",
                              headers = { ["Content-Type"] = "text/plain" }, body = "6 * 7" }
    is_error(res, 415, "UnsupportedMediaType")
    res = pool:request{ method = "PUT", path = "files", identifier = "err-type", api_version = V2 }
    is_error(res, 405, "MethodNotAllowed")
    assert.are.equal("GET, POST", res.headers["allow"])
  end)

  it("answers 404 for a missing file", function()
    local res = pool:request{ path = "files/content/none.txt", identifier = "err-missing" }
    is_error(res, 404, "FileNotFound")
  end)

  it("keeps serving while a client sends its headers slowly, then answers that client too", function()
    local host, port = pool.endpoint:match("http://([^:]+):(%d+)")
    local out, started = pool.dir .. "/slow.out", pool.dir .. "/slow.started"
    local request = "GET /files?identifier=err-slow&api-version=" .. V1 .. " HTTP/1.1\r\nHost: x\r\n" ..
                    "Authorization: Bearer " .. pool.token .. "\r\nConnection: close\r\n\r\n"
    -- bash's /dev/tcp: one byte every 20 ms, about 4 s in all; `started` once the
    -- first byte is out
    local script = pool.dir .. "/slow.sh"
    local f = assert(io.open(script, "w"))
    f:write(("exec 3<>/dev/tcp/%s/%s\nr=%s\nfor i in $(seq 0 $((${#r}-1))); do printf '%%s' \"${r:$i:1}\" >&3; " ..
             "[ $i = 0 ] && : >%s; sleep 0.02; done\ncat <&3 >%s\n")
            :format(host, port, support.quote(request), support.quote(started), support.quote(out)))
    f:close()
    os.execute("bash " .. support.quote(script) .. " >/dev/null 2>&1 &")
    assert.is_truthy(util.wait(function() return support.exists(started) end), "the slow client did not start")
    still_serving()                                 -- while the slow one trickles
    local answer = util.wait(function()
      local a = support.read(out)
      return a and a:find("\r\n\r\n", 1, true) and a:find("}", 1, true) and a
    end)
    assert.matches("^HTTP/1%.1 200", answer or support.read(out) or "")
    assert.matches('"value"', answer)
  end)

  it("logs one access line per request, without the token or the identifier", function()
    local secret_id = "err-log-identifier-xyz"
    pool:execute("'code-marker-" .. "abc'", { identifier = secret_id })
    local log = pool:log()
    assert.matches("POST /code/execute 200 %d+ms session %x+", log)
    assert.is_nil(log:find(pool.token, 1, true), "token in the log")
    assert.is_nil(log:find(secret_id, 1, true), "identifier in the log")
    assert.is_nil(log:find("code-marker-abc", 1, true), "code in the log")
  end)
end)
