-- The first API generation (api-version 2024-02-02-preview) against a real
-- sesh-pool with real sandboxes: execute, upload, list, download, results.
local support = require "support.pool"

local function all_bytes()
  local t = {}
  for i = 0, 255 do t[#t + 1] = string.char(i) end
  return "\0\0" .. table.concat(t) .. table.concat(t):reverse() .. "\0"
end

describe("sesh-pool, first generation", function()
  local pool
  setup(function() pool = support.start{} end)
  teardown(function() pool:stop(); pool:cleanup() end)

  it("executes 6 * 7 and answers the documented shape", function()
    local res, p = pool:execute("6 * 7", { identifier = "gen1-a" })
    assert.are.equal(200, res.status)
    assert.are.equal("1", res.json["$id"])
    assert.are.equal("2", p["$id"])
    assert.are.equal("Success", p.status)
    assert.are.equal(42, p.result)
    assert.are.equal("", p.stdout)
    assert.are.equal("", p.stderr)
    assert.is_number(p.executionTimeInMilliseconds)
    assert.is_truthy(res.headers["x-ms-session-guid"])
  end)

  it("turns an exception into status Failure, a null result and a traceback", function()
    local res, p = pool:execute("1/0", { identifier = "gen1-a" })
    assert.are.equal(200, res.status)
    assert.are.equal("Failure", p.status)
    assert.are.equal(require("cjson").null, p.result)
    assert.matches("ZeroDivisionError", p.stderr)
    local _, again = pool:execute("'still here'", { identifier = "gen1-a" })
    assert.are.equal("still here", again.result)
  end)

  it("keeps variables within a session, not across sessions", function()
    pool:execute("secret = 1234", { identifier = "gen1-keep" })
    local _, p = pool:execute("secret + 1", { identifier = "gen1-keep" })
    assert.are.equal(1235, p.result)
    local _, other = pool:execute("secret", { identifier = "gen1-other" })
    assert.are.equal("Failure", other.status)
    assert.matches("NameError", other.stderr)
  end)

  it("returns results as pool-api.md section 6 says", function()
    local id = { identifier = "gen1-results" }
    assert.are.equal(42, select(2, pool:execute("40 + 2", id)).result)
    assert.are.equal("hello", select(2, pool:execute("'hel' + 'lo'", id)).result)
    assert.are.equal("", select(2, pool:execute("None", id)).result)
    assert.are.equal("", select(2, pool:execute("x = 1", id)).result)
    assert.are.equal(true, select(2, pool:execute("1 < 2", id)).result)
    assert.are.equal("{'a': 1, 'b': [1, 2]}", select(2, pool:execute("{'a': 1, 'b': [1, 2]}", id)).result)
    local _, p = pool:execute("print('out'); import sys; print('err', file=sys.stderr)", id)
    assert.are.equal("out\n", p.stdout)
    assert.are.equal("err\n", p.stderr)
  end)

  it("returns an open matplotlib figure as a PNG image result", function()
    local _, p = pool:execute([[
import matplotlib.pyplot as plt
plt.plot([1, 2, 3], [3, 1, 2])
plt.title('t')
]], { identifier = "gen1-plot", timeout = 120 })
    assert.are.equal("Success", p.status)
    assert.are.equal("image", p.result.type)
    assert.are.equal("png", p.result.format)
    assert.matches("^[A-Za-z0-9+/]+=*$", p.result.base64_data)   -- one unbroken base64 text
    local core = require "sessions.core"
    local png = core.b64decode(p.result.base64_data)
    assert.are.equal("\137PNG\r\n\26\n", png:sub(1, 8))
    local w, h = core.png_info(png)
    assert.is_true(w > 100 and h > 100, ("PNG %sx%s"):format(tostring(w), tostring(h)))
  end)

  it("uploads and downloads a binary file byte for byte, and lists it", function()
    local data = all_bytes()
    local id = { identifier = "gen1-files" }
    local up = pool:request{ method = "POST", path = "files/upload", identifier = id.identifier,
                             multipart = { { name = "file", filename = "bytes.bin", data = data,
                                             content_type = "application/octet-stream" } } }
    assert.are.equal(200, up.status)
    assert.are.equal("1", up.json["$id"])
    local entry = up.json.value[1].properties
    assert.are.equal("bytes.bin", entry.filename)
    assert.are.equal(#data, entry.size)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d+Z$", entry.lastModifiedTime)

    local down = pool:request{ path = "files/content/bytes.bin", identifier = id.identifier }
    assert.are.equal(200, down.status)
    assert.is_true(down.body == data, "downloaded bytes differ")
    assert.are.equal(tostring(#data), down.headers["content-length"])
    assert.are.equal("application/octet-stream", down.headers["content-type"])

    local list = pool:request{ path = "files", identifier = id.identifier }
    assert.are.equal(200, list.status)
    local found
    for _, v in ipairs(list.json.value) do
      if v.properties.filename == "bytes.bin" then found = v.properties end
    end
    assert.is_truthy(found)
    assert.are.equal(#data, found.size)

    -- the code sees it under /mnt/data
    local _, p = pool:execute("len(open('/mnt/data/bytes.bin','rb').read())", id)
    assert.are.equal(#data, p.result)
  end)

  it("strips a leading /mnt/data/ from upload names, as Semantic Kernel sends them", function()
    local up = pool:request{ method = "POST", path = "files/upload", identifier = "gen1-sk",
                             multipart = { { name = "file", filename = "/mnt/data/sk.csv", data = "a,b\n1,2\n" } } }
    assert.are.equal(200, up.status)
    assert.are.equal("sk.csv", up.json.value[1].properties.filename)
    local down = pool:request{ path = "files/content/sk.csv", identifier = "gen1-sk" }
    assert.are.equal("a,b\n1,2\n", down.body)
    assert.are.equal("text/csv", down.headers["content-type"])
  end)

  it("runs the quickstart's data step: upload JSON, sum it in Python", function()
    pool:request{ method = "POST", path = "files/upload", identifier = "gen1-quick",
                  multipart = { { name = "file", filename = "important_data.json",
                                  data = '{"important_data": [1, 10, -1541]}' } } }
    local _, p = pool:execute([[
import json
with open("/mnt/data/important_data.json") as f:
    data = json.load(f)
sum(data['important_data'])
]], { identifier = "gen1-quick" })
    assert.are.equal(-1530, p.result)
  end)

  it("answers at the root and under the Azure prefix, with or without a trailing slash", function()
    local prefix = "/subscriptions/0000/resourceGroups/rg/sessionPools/p"
    local _, a = pool:execute("7 * 6", { identifier = "gen1-prefix", prefix = prefix })
    assert.are.equal(42, a.result)
    local _, b = pool:execute("7 * 7", { identifier = "gen1-prefix", path = "code/execute/" })
    assert.are.equal(49, b.result)
  end)

  it("accepts the query in any order, with the identifier encoded or plain", function()
    local id = "odd+id/with:chars"
    pool:execute("marker = 'same'", { identifier = id })
    local res = pool:request{ method = "POST",
      url = pool.endpoint .. "/code/execute?api-version=2024-02-02-preview&identifier=" .. id,
      json = { properties = { codeInputType = "Inline", executionType = "Synchronous", code = "marker" } } }
    assert.are.equal(200, res.status)
    assert.are.equal("same", res.json.properties.result)
  end)

  it("refuses a call without the token, or with a wrong one, with 401", function()
    local res = pool:request{ path = "files", identifier = "gen1-auth", auth = false }
    assert.are.equal(401, res.status)
    res = pool:request{ path = "files", identifier = "gen1-auth", headers = { Authorization = "Bearer nope" } }
    assert.are.equal(401, res.status)
    res = pool:request{ path = "files", identifier = "gen1-auth",
                        headers = { Authorization = "Bearer " .. pool.token .. "x" } }
    assert.are.equal(401, res.status)
    res = pool:request{ path = "files", identifier = "gen1-auth", headers = { Authorization = "Basic " .. pool.token } }
    assert.are.equal(401, res.status)
    assert.are.equal("Unauthorized", res.headers["x-ms-error-code"])
    res = pool:request{ path = "files", identifier = "gen1-auth" }
    assert.are.equal(200, res.status)
  end)

  it("works through the sessions module", function()
    local s <close> = pool:session{ id = "gen1-module" }
    local r = s:execute("6 * 7")
    assert.are.equal(42, r.result)
  end)
end)
