-- Uploads as real clients send them, read by the pool's own multipart parser
-- (host/pool/multipart.c): requests, httpx and aiohttp (which percent-encodes
-- file names), Semantic Kernel's multipart body under Content-Type
-- application/json, filename*=, malformed bodies, and what a 413 says.
-- The parser itself is tested without a server in tests/multipart.
local support = require "support.pool"
local util = require "support.util"
local cjson = require "cjson"
local V2 = "2025-10-02-preview"
local PY = os.getenv("PYTHON") or "/usr/bin/python3"

describe("sesh-pool uploads from real clients", function()
  local pool
  setup(function() pool = support.start{ args = { "--max-upload", "300000", "--max-disk", "1048576" } } end)
  teardown(function() pool:stop(); pool:cleanup() end)

  -- One upload by a Python client; returns status and the decoded answer.
  local n = 0
  local function upload(client, id, name, data, path, api_version)
    n = n + 1
    local file = util.write(("%s/data-%d"):format(pool.dir, n), data)
    local url = pool:url(path or "files/upload", { identifier = id, api_version = api_version })
    local out = support.sh(("%s tests/support/upload_clients.py %s %s %s %s %s 2>&1"):format(
      PY, client, util.quote(url), util.quote(pool.token), util.quote(name), util.quote(file)))
    local ok, res = pcall(cjson.decode, out)
    assert(ok, out)
    local body_ok, body = pcall(cjson.decode, res.body)
    return res.status, body_ok and body or res.body
  end

  -- Names in the listing, and in /mnt/data as the code sees it.
  local function listed(id)
    local names = {}
    for _, v in ipairs(pool:request{ path = "files", identifier = id }.json.value) do
      names[#names + 1] = v.properties.filename
    end
    table.sort(names)
    return names
  end
  local function inside(id)
    local _, p = pool:execute("import os, json; print(json.dumps(sorted(os.listdir('/mnt/data'))))",
                              { identifier = id })
    return cjson.decode(p.stdout)
  end

  for _, client in ipairs{ "requests", "httpx", "aiohttp" } do
    it(client .. " uploads keep their names, spaces, quotes and UTF-8 included", function()
      local id = "mp-" .. client
      local names = { "in 2.csv", "é ü.csv", 'a"b.csv', "x=y&z;w.txt", "日本.txt", "plain.csv" }
      for i, name in ipairs(names) do
        local status, body = upload(client, id, name, "content " .. i)
        assert.are.equal(200, status, cjson.encode(body))
        assert.are.equal(name, body.value[1].properties.filename)
        local got = pool:request{ path = "files/content/" .. support.encode(name), identifier = id }
        assert.are.equal(200, got.status)
        assert.are.equal("content " .. i, got.body)
      end
      table.sort(names)
      assert.are.same(names, listed(id))
      assert.are.same(names, inside(id))
    end)
  end

  it("reads Semantic Kernel's upload, a multipart body under Content-Type application/json", function()
    local status, body = upload("sk", "mp-sk", "/mnt/data/sk data.csv", "a,b\n1,2\n")
    assert.are.equal(200, status, cjson.encode(body))
    assert.are.equal("sk data.csv", body.value[1].properties.filename)
    assert.are.same({ "sk data.csv" }, inside("mp-sk"))
    -- the second generation too
    status, body = upload("sk", "mp-sk", "two.csv", "x", "files", V2)
    assert.are.equal(200, status, cjson.encode(body))
    assert.are.equal("two.csv", body.name)
  end)

  it("still answers 415 to a JSON body that is not multipart", function()
    local res = pool:request{ method = "POST", path = "files/upload", identifier = "mp-415",
                              headers = { ["Content-Type"] = "application/json" },
                              body = '{"properties": {"code": "--x"}}' }
    assert.are.equal(415, res.status)
    assert.are.equal("UnsupportedMediaType", res.json.error.code)
    assert.matches("application/json", res.json.error.message)
  end)

  -- A raw request: the body as given, Content-Length set.
  local function raw(id, content_type, body)
    local host, port = pool.endpoint:match("http://([^:]+):(%d+)")
    n = n + 1
    local head = ("POST /files/upload?api-version=2024-02-02-preview&identifier=%s HTTP/1.1\r\n" ..
      "Host: x\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n" ..
      "Connection: close\r\n\r\n"):format(id, pool.token, content_type, #body)
    local request = util.write(("%s/raw-%d.http"):format(pool.dir, n), head .. body)
    local answer = support.sh(("%s tests/support/raw_http.py %s %s %s"):format(
      PY, host, port, util.quote(request)))
    local status = tonumber(answer:match("^HTTP/1%.1 (%d+)"))
    local json = answer:match("\r\n\r\n(.*)$")
    local ok, v = pcall(cjson.decode, json or "")
    return status, ok and v or answer
  end
  local function part(disposition, data, boundary)
    boundary = boundary or "BOUNDARY"
    return ("--%s\r\nContent-Disposition: form-data; %s\r\n\r\n%s\r\n--%s--\r\n"):format(
      boundary, disposition, data, boundary)
  end
  local MP = "multipart/form-data; boundary=BOUNDARY"

  it("takes filename*= over filename=, and decodes both", function()
    local status, body = raw("mp-ext", MP, part([[name="file"; filename="fallback.txt"; ]] ..
                                                [[filename*=UTF-8''r%C3%A9sum%C3%A9%202.txt]], "ext"))
    assert.are.equal(200, status, cjson.encode(body))
    assert.are.equal("résumé 2.txt", body.value[1].properties.filename)
    status, body = raw("mp-ext", MP, part([[name="file"; filename="sub%2Fin%202.csv"]], "sub"))
    assert.are.equal(200, status, cjson.encode(body))
    assert.are.same({ "résumé 2.txt", "sub" }, inside("mp-ext"))
    assert.are.equal("sub", pool:request{ path = "files/content/sub%2Fin%202.csv", identifier = "mp-ext" }.body)
  end)

  it("checks decoded names like any other: '..', NUL and control characters are refused", function()
    local status, body = raw("mp-bad-names", MP, part([[name="file"; filename="..%2F..%2Fescape.txt"]], "x"))
    assert.are.equal(400, status)
    assert.are.equal("InvalidFileName", body.error.code)
    status, body = raw("mp-bad-names", MP, part([[name="file"; filename="a.txt%00.png"]], "x"))
    assert.are.equal(400, status)
    assert.are.equal("InvalidMultipartBody", body.error.code)
    assert.matches("NUL", body.error.message)
    status, body = raw("mp-bad-names", MP, part([[name="file"; filename="new%0Aline.txt"]], "x"))
    assert.are.equal(400, status)
    assert.are.equal("InvalidFileName", body.error.code)
    assert.are.same({}, listed("mp-bad-names"))
    assert.are.same({}, inside("mp-bad-names"))
  end)

  it("refuses a malformed body with 400 and keeps nothing of it", function()
    local cases = {
      { MP, "--BOUNDARY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.txt\"\r\n\r\nno end",
        "ends inside part 1" },
      { MP, "--BOUNDARY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"open.txt\"\r\n\r\nx\r\n" ..
            "--BOUNDARY\r\n", "without its closing boundary" },
      { MP, "--BOUNDARY\r\nContent-Type: text/plain\r\n\r\nx\r\n--BOUNDARY--\r\n", "no Content-Disposition" },
      { MP, "--BOUNDARY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"; filename=\"b\"\r\n" ..
            "\r\nx\r\n--BOUNDARY--\r\n", "filename twice" },
      { "multipart/form-data; boundary=OTHER", part([[name="file"; filename="b.txt"]], "x"),
        "no boundary line '--OTHER'" },
    }
    for _, c in ipairs(cases) do
      local status, body = raw("mp-malformed", c[1], c[2])
      assert.are.equal(400, status, c[3])
      assert.are.equal("InvalidMultipartBody", body.error.code, c[3])
      assert.matches(c[3], body.error.message, 1, true)
    end
    assert.are.same({}, inside("mp-malformed"))
  end)

  it("keeps the first part named file, whatever comes before and after", function()
    local body = "preamble\r\n--BOUNDARY\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n" ..
                 "--BOUNDARY-not\r\n--BOUNDARY\r\nContent-Disposition: form-data; name=\"file\"; " ..
                 "filename=\"first.txt\"\r\n\r\n\r\n--BOUNDARYx\r\n--BOUNDARY\r\nContent-Disposition: " ..
                 "form-data; name=\"file\"; filename=\"second.txt\"\r\n\r\nsecond\r\n--BOUNDARY--\r\nepilogue"
    local status, res = raw("mp-first", MP, body)
    assert.are.equal(200, status, cjson.encode(res))
    assert.are.same({ "first.txt" }, inside("mp-first"))
    assert.are.equal("\r\n--BOUNDARYx", pool:request{ path = "files/content/first.txt", identifier = "mp-first" }.body)
  end)

  it("says in every 413 which option raises the limit", function()
    local big = string.rep("b", 400000)
    for _, client in ipairs{ "requests", "chunked" } do       -- with Content-Length, and without
      local status, body = upload(client, "mp-413", "big.bin", big)
      assert.are.equal(413, status, client)
      assert.are.equal("PayloadTooLarge", body.error.code, client)
      assert.matches("--max-upload", body.error.message, 1, true)
    end
    -- the session's disk (1 MiB here): a file that fits --max-upload does not fit in it
    local _, fill = pool:execute("open('/mnt/data/fill', 'wb').write(b'f' * 900000)", { identifier = "mp-413" })
    assert.are.equal("Success", fill.status, fill.stderr)
    local status, body = upload("requests", "mp-413", "over.bin", string.rep("o", 250000))
    assert.are.equal(413, status)
    assert.are.equal("SessionDiskLimitExceeded", body.error.code)
    assert.matches("--max-disk", body.error.message, 1, true)
    -- a JSON body's limit is fixed, and says so
    local res = pool:request{ method = "POST", path = "executions", identifier = "mp-413", api_version = V2,
                              json = { code = string.rep("#", 9 * 2 ^ 20) } }
    assert.are.equal(413, res.status)
    assert.matches("fixed limit", res.json.error.message, 1, true)
  end)
end)
