-- The second API generation (2024-10-02-preview, 2025-02-02-preview,
-- 2025-10-02-preview): every operation, shapes checked against pool-api.md
-- section 5 and the Azure REST specification's examples.
local support = require "support.pool"
local cjson = require "cjson"

local V = "2025-10-02-preview"

describe("sesh-pool, second generation", function()
  local pool
  -- listSessions pages by 100: more sessions than a small host's memory-derived default
  setup(function() pool = support.start{ args = { "--max-sessions", "200" } } end)
  teardown(function() pool:stop(); pool:cleanup() end)

  local function exec(id, body, o)
    o = o or {}
    body.codeInputType = body.codeInputType or "Inline"
    body.executionType = body.executionType or "Synchronous"
    body.timeoutInSeconds = body.timeoutInSeconds or 60
    return pool:request{ method = "POST", path = "executions", identifier = id,
                         api_version = o.api_version or V, json = body, headers = o.headers }
  end

  it("executes synchronously: execution resource, operation-id and Operation-Location", function()
    local res = exec("gen2-sync", { code = "print(7*9)" })
    assert.are.equal(200, res.status)
    local j = res.json
    assert.are.equal("gen2-sync", j.identifier)
    assert.are.equal("Synchronous", j.executionType)
    assert.are.equal("Succeeded", j.status)
    assert.are.equal("63\n", j.result.stdout)
    assert.are.equal("", j.result.stderr)
    assert.are.equal("", j.result.executionResult)
    assert.is_number(j.result.executionTimeInMilliseconds)
    assert.are.equal(j.id, res.headers["operation-id"])
    local loc = res.headers["operation-location"]
    local want = "/executions/" .. j.id .. "?identifier=gen2-sync&api-version=" .. V
    assert.is_truthy(loc:find(want, 1, true), loc)
    -- the location answers the same resource
    local again = pool:request{ url = loc }
    assert.are.equal(200, again.status)
    assert.are.equal("Succeeded", again.json.status)
    assert.are.equal("63\n", again.json.result.stdout)
  end)

  it("fails an exception with status Failed, a null result and the traceback", function()
    local res = exec("gen2-sync", { code = "raise ValueError('boom')" })
    assert.are.equal(200, res.status)
    assert.are.equal("Failed", res.json.status)
    assert.are.equal(cjson.null, res.json.result.executionResult)
    assert.matches("ValueError: boom", res.json.result.stderr)
  end)

  it("runs asynchronously, named by the operation-id header, polled with GET executions/{id}", function()
    local res = exec("gen2-async", { code = "import time; time.sleep(1.5); 'done'", executionType = "Asynchronous" },
                     { headers = { ["operation-id"] = "my-op.1" } })
    assert.are.equal(200, res.status)
    assert.are.same({ id = "my-op.1", identifier = "gen2-async", executionType = "Asynchronous",
                      status = "Running" }, res.json)
    assert.are.equal("my-op.1", res.headers["operation-id"])
    assert.is_truthy(res.headers["operation-location"])
    local status, body
    for _ = 1, 100 do
      local r = pool:request{ path = "executions/my-op.1", identifier = "gen2-async", api_version = V }
      status, body = r.status, r.json
      if body.status ~= "Running" then break end
      support.sleep(0.1)
    end
    assert.are.equal(200, status)
    assert.are.equal("Succeeded", body.status)
    assert.are.equal("done", body.result.executionResult)
    -- the same operation-id again is a conflict
    local dup = exec("gen2-async", { code = "1" }, { headers = { ["operation-id"] = "my-op.1" } })
    assert.are.equal(409, dup.status)
  end)

  it("runs the executions of one session one at a time, in arrival order", function()
    exec("gen2-order", { code = "order = []" })
    for i = 1, 4 do
      local code = i == 1 and "import time; time.sleep(1); order.append(1)" or ("order.append(%d)"):format(i)
      local r = exec("gen2-order", { code = code, executionType = "Asynchronous" })
      assert.are.equal("Running", r.json.status)
    end
    local last = exec("gen2-order", { code = "order" })   -- queued behind the four
    assert.are.equal("[1, 2, 3, 4]", last.json.result.executionResult)
  end)

  it("answers 404 ExecutionNotFound for an unknown execution", function()
    exec("gen2-sync", { code = "1" })
    local r = pool:request{ path = "executions/nope", identifier = "gen2-sync", api_version = V }
    assert.are.equal(404, r.status)
    assert.are.equal("ExecutionNotFound", r.json.error.code)
    assert.are.equal("ExecutionNotFound", r.headers["x-ms-error-code"])
  end)

  it("decodes InlineBase64 code, and accepts enum values in any case", function()
    local code = require("sessions.core").b64encode("x = 20\nx * 2 + 2")
    local res = exec("gen2-b64", { code = code, codeInputType = "inlinebase64", executionType = "SYNCHRONOUS" })
    assert.are.equal(200, res.status)
    assert.are.equal(42, res.json.result.executionResult)
  end)

  it("returns primitive results as their repr with returnJupyterFormatExecutionResult", function()
    local res = exec("gen2-jup", { code = "float('nan')", returnJupyterFormatExecutionResult = true })
    assert.are.equal("nan", res.json.result.executionResult)
    res = exec("gen2-jup", { code = "float('nan')" })
    assert.are.equal(cjson.null, res.json.result.executionResult)
  end)

  it("caps output streams at outputStreamsMaxLength and says so", function()
    local res = exec("gen2-cap", { code = "print('x' * 10000)", outputStreamsMaxLength = 100 })
    assert.are.equal(200, res.status)
    local out = res.json.result.stdout
    assert.are.equal(string.rep("x", 100), out:sub(1, 100))
    assert.is_nil(out:find("xxxxxxxxxx", 101, true))
    assert.matches("truncated", out)
  end)

  it("uploads into a path, gets metadata, lists, downloads and deletes files", function()
    local up = pool:request{ method = "POST", path = "files", identifier = "gen2-files", api_version = V,
                             query = { { "identifier", "gen2-files" }, { "api-version", V }, { "path", "sub/dir" } },
                             multipart = { { name = "file", filename = "data.csv", data = "a,b\n1,2\n" } } }
    assert.are.equal(200, up.status)
    local f = up.json
    assert.are.equal("data.csv", f.name)
    assert.are.equal("File", f.type)
    assert.are.equal("text/csv", f.contentType)
    assert.are.equal(8, f.sizeInBytes)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", f.lastModifiedAt)
    assert.are.equal("sub/dir", f.directory)

    local function q(extra)
      local t = { { "api-version", V }, { "identifier", "gen2-files" } }   -- api-version first, on purpose
      for _, kv in ipairs(extra or {}) do t[#t + 1] = kv end
      return t
    end
    local meta = pool:request{ path = "files/data.csv", query = q{ { "path", "sub/dir" } } }
    assert.are.equal(200, meta.status)
    assert.are.equal(8, meta.json.sizeInBytes)
    local meta2 = pool:request{ path = "files/sub%2Fdir%2Fdata.csv", query = q() }
    assert.are.equal(200, meta2.status)

    local top = pool:request{ path = "files", query = q() }
    assert.are.equal(200, top.status)
    assert.are.equal(cjson.null, top.json.nextLink)
    assert.are.equal(1, #top.json.value)
    assert.are.equal("sub", top.json.value[1].name)
    assert.are.equal("Directory", top.json.value[1].type)

    local rec = pool:request{ path = "files", query = q{ { "recursive", "true" } } }
    local names = {}
    for _, v in ipairs(rec.json.value) do names[#names + 1] = v.directory .. "|" .. v.name .. "|" .. v.type end
    assert.are.same({ "|sub|Directory", "sub|dir|Directory", "sub/dir|data.csv|File" }, names)

    local down = pool:request{ path = "files/data.csv/content", query = q{ { "path", "sub/dir" } } }
    assert.are.equal(200, down.status)
    assert.are.equal("a,b\n1,2\n", down.body)
    assert.are.equal("text/csv", down.headers["content-type"])

    local del = pool:request{ method = "DELETE", path = "files/data.csv", query = q{ { "path", "sub/dir" } } }
    assert.are.equal(204, del.status)
    local gone = pool:request{ path = "files/data.csv", query = q{ { "path", "sub/dir" } } }
    assert.are.equal(404, gone.status)
    assert.are.equal("FileNotFound", gone.json.error.code)
    local gone2 = pool:request{ method = "DELETE", path = "files/data.csv", query = q{ { "path", "sub/dir" } } }
    assert.are.equal(404, gone2.status)
  end)

  it("gets, lists and deletes sessions", function()
    exec("gen2-sess-a", { code = "1" })
    exec("gen2-sess-b", { code = "1" })
    local g = pool:request{ path = "session", identifier = "gen2-sess-a", api_version = V }
    assert.are.equal(200, g.status)
    assert.are.equal("gen2-sess-a", g.json.identifier)
    for _, k in ipairs{ "createdAt", "lastAccessedAt", "expireAt", "etag" } do
      assert.is_string(g.json[k], k)
    end
    local l = pool:request{ path = "listSessions", identifier = false, api_version = V }
    assert.are.equal(200, l.status)
    local ids = {}
    for _, s in ipairs(l.json.sessions) do ids[s.identifier] = true end
    assert.is_true(ids["gen2-sess-a"] and ids["gen2-sess-b"])
    assert.are.equal(cjson.null, l.json.nextLink)

    local d = pool:request{ method = "DELETE", path = "session", identifier = "gen2-sess-a", api_version = V }
    assert.are.equal(204, d.status)
    local g2 = pool:request{ path = "session", identifier = "gen2-sess-a", api_version = V }
    assert.are.equal(404, g2.status)
    assert.are.equal("SessionNotFound", g2.json.error.code)
    -- a new call with that identifier starts a fresh session
    local fresh = exec("gen2-sess-a", { code = "'x' in dir()" })
    assert.are.equal(false, fresh.json.result.executionResult)
  end)

  it("pages listSessions by 100 with skip and nextLink", function()
    for i = 1, 105 do
      assert.are.equal(200, pool:request{ path = "files", identifier = ("page-%03d"):format(i), api_version = V }.status)
    end
    local first = pool:request{ path = "listSessions", identifier = false, api_version = V }
    assert.are.equal(100, #first.json.sessions)
    assert.is_string(first.json.nextLink)
    assert.matches("skip=100", first.json.nextLink)
    local second = pool:request{ url = first.json.nextLink }
    assert.are.equal(200, second.status)
    assert.are.equal(cjson.null, second.json.nextLink)
    local seen = {}
    for _, page in ipairs{ first, second } do
      for _, s in ipairs(page.json.sessions) do seen[s.identifier] = true end
    end
    for i = 1, 105 do assert.is_true(seen[("page-%03d"):format(i)], "missing page-" .. i) end
    local bad = pool:request{ path = "listSessions", query = { { "api-version", V }, { "skip", "-1" } } }
    assert.are.equal(400, bad.status)
    for i = 1, 105 do
      pool:request{ method = "DELETE", path = "session", identifier = ("page-%03d"):format(i), api_version = V }
    end
  end)

  it("stops a session with POST .management/stopSession", function()
    exec("gen2-stop", { code = "kept = 1" })
    local r = pool:request{ method = "POST", path = ".management/stopSession", identifier = "gen2-stop", api_version = V }
    assert.are.equal(200, r.status)
    local g = pool:request{ path = "session", identifier = "gen2-stop", api_version = V }
    assert.are.equal(404, g.status)
    local older = pool:request{ method = "POST", path = ".management/stopSession", identifier = "gen2-stop",
                                api_version = "2025-02-02-preview" }
    assert.are.equal(404, older.status)
    assert.are.equal("OperationNotSupported", older.json.error.code)
  end)

  it("describes the pool with GET metadata: the real Python and its packages", function()
    local r = pool:request{ path = "metadata", identifier = false, api_version = V, timeout = 120 }
    assert.are.equal(200, r.status)
    local j = r.json
    assert.are.equal("python", j.runtimes[1].name)
    local real = support.sh("/usr/bin/python3 -c 'import platform; print(platform.python_version())'"):gsub("%s+$", "")
    assert.are.equal(real, j.runtimes[1].version)
    local names = {}
    for _, p in ipairs(j.preInstalledPackages) do names[p.name:lower()] = p.version end
    assert.is_string(names.numpy)
    assert.is_string(names.pandas)
    assert.are.equal("IPython", j.jupyterKernel.name)
    assert.is_string(j.createdAt)
  end)

  it("answers timing headers on executions", function()
    local res = exec("gen2-timing", { code = "1" })
    for _, h in ipairs{ "x-ms-session-guid", "x-ms-allocation-time", "x-ms-new-allocation",
                        "x-ms-container-execution-duration", "x-ms-overall-execution-time",
                        "x-ms-execution-request-time", "x-ms-total-execution-service-time" } do
      assert.is_truthy(res.headers[h], h)
    end
    assert.are.equal("True", res.headers["x-ms-new-allocation"])
    local again = exec("gen2-timing", { code = "1" })
    assert.are.equal("False", again.headers["x-ms-new-allocation"])
    assert.are.equal(res.headers["x-ms-session-guid"], again.headers["x-ms-session-guid"])
  end)

  it("serves the operations under the Azure prefix too", function()
    local prefix = "/subscriptions/s/resourceGroups/g/sessionPools/p"
    local r = pool:request{ method = "POST", path = "executions", identifier = "gen2-prefix", api_version = V,
                            prefix = prefix, json = { code = "6*7", timeoutInSeconds = 10 } }
    assert.are.equal(200, r.status)
    assert.are.equal(42, r.json.result.executionResult)
    assert.matches(prefix:gsub("%p", "%%%0") .. "/executions/", r.headers["operation-location"])
  end)
end)
