-- Names as the pool takes them: a NUL (%00) in any decoded identifier, file
-- name, path or execution id is refused (a C string would end there and name
-- something else); an upload's name is checked whole (UTF-8, names the pool
-- reserves) before anything is written; a listing hides no file of the user.
local support = require "support.pool"
local V1, V2 = "2024-02-02-preview", "2025-10-02-preview"

describe("sesh-pool names", function()
  local pool
  setup(function() pool = support.start{} end)
  teardown(function() pool:stop(); pool:cleanup() end)

  local function up(id, filename, o)
    o = o or {}
    return pool:request{ method = "POST", path = o.path or "files/upload", identifier = id,
                         api_version = o.api_version, query = o.query, plain = o.plain,
                         multipart = { { name = "file", filename = filename, data = "data" } } }
  end

  local function ls(id)       -- what the code sees in /mnt/data, walked whole
    local _, p = pool:execute("import os; print(sorted(os.path.join(d, n)[2:] for d, ds, fs in " ..
                              "os.walk('.') for n in ds + fs))", { identifier = id })
    return p.stdout
  end

  local function refused(res, code, target, words)
    assert.are.equal(400, res.status, res.body)
    assert.are.equal(code, res.json.error.code)
    assert.are.equal(code, res.headers["x-ms-error-code"])
    assert.are.equal(target, res.json.error.target)
    assert.matches(words, res.json.error.message)
  end

  it("refuses a NUL in the identifier, not taking it for a shorter one", function()
    assert.are.equal(200, up("nul-abcd", "secret.txt").status)
    local res = pool:request{ path = "files", plain = true,
                              query = { { "identifier", "nul-abcd%00x" }, { "api-version", V1 } } }
    refused(res, "InvalidIdentifier", "identifier", "NUL")
    res = pool:request{ method = "DELETE", path = "session", plain = true,
                        query = { { "identifier", "nul-abcd%00" }, { "api-version", V2 } } }
    refused(res, "InvalidIdentifier", "identifier", "NUL")
    assert.are.equal(200, pool:request{ path = "session", identifier = "nul-abcd", api_version = V2 }.status)
    -- in the name of a parameter too
    res = pool:request{ path = "files", plain = true,
                        query = { { "identifier%00x", "nul-abcd" }, { "api-version", V1 } } }
    assert.are.equal(400, res.status)
  end)

  it("refuses a NUL in a file name or path, not serving the file before it", function()
    assert.are.equal(200, up("nul-names", "a.txt").status)
    refused(pool:request{ path = "files/content/a.txt%00.png", identifier = "nul-names" },
            "InvalidPath", nil, "NUL")
    refused(pool:request{ path = "files/a.txt%00.png/content", identifier = "nul-names", api_version = V2 },
            "InvalidPath", nil, "NUL")
    refused(pool:request{ path = "files/a.txt%00.png", identifier = "nul-names", api_version = V2 },
            "InvalidPath", nil, "NUL")
    refused(pool:request{ method = "DELETE", path = "files/a.txt%00x", identifier = "nul-names",
                          api_version = V2 }, "InvalidPath", nil, "NUL")
    refused(pool:request{ path = "files", plain = true, query = { { "identifier", "nul-names" },
                          { "api-version", V2 }, { "path", "sub%00dir" } } },
            "InvalidParameter", "path", "NUL")
    refused(up("nul-names", "b.txt", { path = "files", plain = true, query = {
              { "identifier", "nul-names" }, { "api-version", V2 }, { "path", "d%00" } } }),
            "InvalidParameter", "path", "NUL")
    assert.are.equal("['a.txt']\n", ls("nul-names"))
  end)

  it("refuses a NUL in an execution id", function()
    local res = pool:request{ method = "POST", path = "executions", identifier = "nul-exec", api_version = V2,
                              headers = { ["operation-id"] = "run-1" },
                              json = { code = "6 * 7", timeoutInSeconds = 30 } }
    assert.are.equal(200, res.status)
    assert.are.equal(200, pool:request{ path = "executions/run-1", identifier = "nul-exec",
                                        api_version = V2 }.status)
    refused(pool:request{ path = "executions/run-1%00x", identifier = "nul-exec", api_version = V2 },
            "InvalidPath", nil, "NUL")
  end)

  it("refuses an upload named in bytes that are not UTF-8, writing nothing", function()
    refused(up("names-utf8", "caf\233.txt"), "InvalidFileName", "file", "not UTF%-8")
    refused(up("names-utf8", "ok.txt", { path = "files", plain = true, query = {
              { "identifier", "names-utf8" }, { "api-version", V2 }, { "path", "d%E9" } } }),
            "InvalidFileName", "file", "not UTF%-8")
    assert.are.equal("[]\n", ls("names-utf8"))
    local list = pool:request{ path = "files", identifier = "names-utf8" }
    assert.are.same({}, list.json.value)
  end)

  it("refuses the names the pool keeps for itself, writing nothing", function()
    refused(up("names-own", ".sesh-upload-x.txt"), "InvalidFileName", "file", "the pool's own")
    refused(up("names-own", "sub/.sesh-upload-0123456789abcdef"), "InvalidFileName", "file", "the pool's own")
    refused(up("names-own", "f.txt", { path = "files", plain = true, query = {
              { "identifier", "names-own" }, { "api-version", V2 }, { "path", ".sesh-upload-d" } } }),
            "InvalidFileName", "file", "the pool's own")
    assert.are.equal("[]\n", ls("names-own"))
  end)

  it("lists every file of the user, whatever its name", function()
    local _, p = pool:execute("open('.sesh-upload-mine', 'w').write('m'); " ..
                              "open('.sesh-upload-0123456789abcdef', 'w').write('m')",
                              { identifier = "names-list" })
    assert.are.equal("Success", p.status, p.stderr)
    local list = pool:request{ path = "files", identifier = "names-list", api_version = V2 }
    local found = {}
    for _, v in ipairs(list.json.value) do found[#found + 1] = v.name end
    table.sort(found)
    assert.are.same({ ".sesh-upload-0123456789abcdef", ".sesh-upload-mine" }, found)
  end)
end)
