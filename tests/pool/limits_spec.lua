-- Limits and recoveries: warm pool, timeouts, lost interpreters, output and
-- upload caps, --max-sessions, --cooldown.
local support = require "support.pool"
local util = require "support.util"
local V2 = "2025-10-02-preview"

local function health(pool)
  return pool:request{ path = "health", auth = false, identifier = false, api_version = false }
end

local function health_ready(pool, n)
  for _ = 1, 300 do
    local h = health(pool)
    if h.json and h.json.readySessions >= n then return true end
    support.sleep(0.1)
  end
  return false
end

describe("sesh-pool limits", function()
  local pool
  setup(function()
    pool = support.start{ args = { "--ready-sessions", "1", "--timeout", "3", "--max-output", "5000",
                                   "--max-upload", "100000" } }
  end)
  teardown(function() pool:stop(); pool:cleanup() end)

  it("answers GET /health without a token", function()
    local h = health(pool)
    assert.are.equal(200, h.status)
    assert.are.equal("Healthy", h.json.status)
  end)

  it("allocates new sessions from the warm pool and refills it", function()
    assert.is_true(health_ready(pool, 1), "no ready sandbox")
    local res, p = pool:execute("6 * 7", { identifier = "lim-warm" })
    assert.are.equal(42, p.result)
    assert.are.equal("True", res.headers["x-ms-new-allocation"])
    assert.are.equal("0", res.headers["x-ms-allocation-time"])     -- nothing was started for it
    assert.is_true(health_ready(pool, 1), "the warm pool was not refilled")
  end)

  it("interrupts code at the timeout and keeps the session's state", function()
    pool:execute("kept = 5", { identifier = "lim-timeout" })
    local res, p = pool:execute("import time\ntime.sleep(60)", { identifier = "lim-timeout" })
    assert.are.equal(200, res.status)
    assert.are.equal("Failure", p.status)
    assert.matches("timed out after 3 s", p.stderr)
    assert.matches("KeyboardInterrupt", p.stderr)
    local _, q = pool:execute("kept", { identifier = "lim-timeout" })
    assert.are.equal(5, q.result)
  end)

  it("interrupts the code of a client that went away, and keeps the session's state", function()
    local id = "lim-gone"
    local function run(code, o)
      o = o or {}
      return pool:request{ method = "POST", path = "executions", identifier = id, api_version = V2,
                           json = { code = code, codeInputType = "Inline", executionType = "Synchronous",
                                    timeoutInSeconds = 3 },
                           headers = o.headers, timeout = o.timeout }
    end
    assert.are.equal("Succeeded", run("kept = 1").json.status)
    -- the client gives up after half a second, long before the pool's 3 s timeout
    local ok = pcall(run, "import time\ntime.sleep(60)\nkept = 2",
                     { timeout = 0.5, headers = { ["operation-id"] = "gone-1" } })
    assert.is_false(ok)
    local r
    for _ = 1, 50 do
      r = pool:request{ path = "executions/gone-1", identifier = id, api_version = V2 }
      if r.json and r.json.status ~= "Running" then break end
      support.sleep(0.1)
    end
    assert.are.equal("Failed", r.json.status)
    assert.are.equal("ExecutionAbandoned", r.json.error.code)
    assert.matches("client went away", r.json.result.stderr)
    assert.matches("KeyboardInterrupt", r.json.result.stderr)
    assert.are.equal(1, run("kept").json.result.executionResult)
    local log = pool:log()
    assert.matches("execution interrupted: its client went away", log)
    assert.is_nil(log:match("lim%-gone[^\n]*timeout"))
  end)

  it("runs the code of a client that only half-closed its side, and answers it", function()
    -- HTTP lets a client shut its sending side once the request is out; a 102
    -- Processing tells such a client from one that is gone, and it gets its answer
    local host, port = pool.endpoint:match("http://([^:]+):(%d+)")
    local body = '{"properties": {"codeInputType": "inline", "executionType": "synchronous", ' ..
                 '"code": "import time\\ntime.sleep(0.5)\\n6 * 7"}}'
    local request = util.write(pool.dir .. "/half.http", ("POST /code/execute?api-version=" ..
      "2024-02-02-preview&identifier=lim-half HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n" ..
      "Content-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s")
      :format(pool.token, #body, body))
    local p = io.popen(("%s tests/support/raw_http.py %s %s %s --half-close"):format(
      os.getenv("PYTHON") or "/usr/bin/python3", host, port, request))
    local answer = p:read("a")
    p:close()
    assert.matches("^HTTP/1%.1 102 Processing\r\n\r\nHTTP/1%.1 200 OK", answer)
    assert.matches('"result":42', answer)
  end)

  it("takes a shorter timeoutInSeconds and caps a longer one", function()
    local r = pool:request{ method = "POST", path = "executions", identifier = "lim-timeout2", api_version = V2,
                            json = { code = "import time; time.sleep(30)", timeoutInSeconds = 1 } }
    assert.are.equal("Failed", r.json.status)
    assert.are.equal("ExecutionTimedOut", r.json.error.code)
    assert.matches("timed out after 1 s", r.json.result.stderr)
    r = pool:request{ method = "POST", path = "executions", identifier = "lim-timeout2", api_version = V2,
                      json = { code = "import time; time.sleep(30)", timeoutInSeconds = 1000 } }
    assert.matches("timed out after 3 s", r.json.result.stderr)
  end)

  it("replaces an interpreter that ignores the interrupt, and says the state was lost", function()
    pool:execute("kept = 1", { identifier = "lim-stubborn" })
    local res, p = pool:execute([[
import time
while True:
    try:
        time.sleep(100)
    except KeyboardInterrupt:
        pass
]], { identifier = "lim-stubborn", timeout = 60 })
    assert.are.equal(200, res.status)
    assert.are.equal("Failure", p.status)
    assert.matches("state %(variables, imports%) is gone", p.stderr)
    local _, q = pool:execute("'kept' in dir()", { identifier = "lim-stubborn" })
    assert.are.equal(false, q.result)
  end)

  it("recovers when the code kills its own interpreter", function()
    pool:execute("kept = 1", { identifier = "lim-suicide" })
    local res, p = pool:execute("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", { identifier = "lim-suicide" })
    assert.are.equal(200, res.status)
    assert.are.equal("Failure", p.status)
    assert.matches("Python was lost", p.stderr)
    local _, q = pool:execute("'kept' in dir(), 6 * 7", { identifier = "lim-suicide" })
    assert.are.equal("(False, 42)", q.result)
    assert.matches("Python lost", pool:log())
  end)

  it("notices an interpreter that died between executions, logs it and starts a new one", function()
    pool:execute("kept = 1", { identifier = "lim-crash" })
    -- the interpreter takes a name of its own, and is dead once no process has it
    local name = ("doomed-%d"):format(math.random(100000, 999999))
    local _, p = pool:execute(([[
import threading, os, time
open('/proc/self/comm', 'w').write('%s')
threading.Thread(target=lambda: (time.sleep(0.3), os._exit(3))).start()
'scheduled'
]]):format(name), { identifier = "lim-crash" })
    assert.are.equal("scheduled", p.result)
    local function named()
      return support.sh("grep -lx " .. name .. " /proc/[0-9]*/comm 2>/dev/null") ~= ""
    end
    assert.is_true(named(), "no process is named " .. name)
    assert.is_truthy(util.wait(function() return not named() end), "the interpreter did not die")
    local _, q = pool:execute("'kept' in dir()", { identifier = "lim-crash" })
    assert.are.equal("Success", q.status)
    assert.are.equal(false, q.result)
    assert.matches("had exited", q.stderr)
    assert.matches("had exited", pool:log())
  end)

  it("caps stdout at --max-output and says it did", function()
    local _, p = pool:execute("print('y' * 20000)", { identifier = "lim-output" })
    assert.are.equal(string.rep("y", 5000), p.stdout:sub(1, 5000))
    assert.is_true(#p.stdout < 6000)
    assert.matches("truncated", p.stdout)
  end)

  it("refuses an upload over --max-upload with 413 and keeps nothing of it", function()
    local ok = pool:request{ method = "POST", path = "files/upload", identifier = "lim-upload",
                             multipart = { { name = "file", filename = "fits.bin", data = string.rep("a", 100000) } } }
    assert.are.equal(200, ok.status)
    local big = pool:request{ method = "POST", path = "files/upload", identifier = "lim-upload",
                              multipart = { { name = "file", filename = "big.bin", data = string.rep("b", 200000) } } }
    assert.are.equal(413, big.status)
    assert.are.equal("PayloadTooLarge", big.json.error.code)
    local list = pool:request{ path = "files", identifier = "lim-upload" }
    assert.are.equal(1, #list.json.value)
    assert.are.equal("fits.bin", list.json.value[1].properties.filename)
  end)
end)

describe("sesh-pool sandboxes started on demand", function()
  -- With no warm sandbox, a session's own sandbox defers matplotlib to the first
  -- code that plots (it is ready sooner); figures must come out as in a warm one.
  local cold, warm
  setup(function()
    cold = support.start{ args = { "--ready-sessions", "0" } }
    warm = support.start{ args = { "--ready-sessions", "1" } }
  end)
  teardown(function()
    for _, p in ipairs{ cold, warm } do p:stop(); p:cleanup() end
  end)

  local PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [3, 1, 2])\nplt.title('t')"
  local SETTINGS = "import matplotlib as m, os, subprocess, sys; (m.get_backend(), " ..
                   "m.rcParams['figure.figsize'][0], m.rcParams['figure.dpi'], m.is_interactive(), " ..
                   "os.environ.get('MPLBACKEND'), subprocess.run([sys.executable, '-c', " ..
                   "'import matplotlib; print(matplotlib.get_backend())'], capture_output=True, " ..
                   "text=True).stdout.strip())"

  local function figure(pool, id)
    local _, p = pool:execute(PLOT, { identifier = id, timeout = 120 })
    assert.are.equal("Success", p.status, p.stderr)
    assert.are.equal("image", p.result.type)
    local png = require("sessions.core").b64decode(p.result.base64_data)
    return { require("sessions.core").png_info(png) }, pool:execute(SETTINGS, { identifier = id }).json
  end

  it("plots the same figure, with the same settings, as a warm sandbox", function()
    assert.is_true(health_ready(warm, 1), "no warm sandbox")
    local r0 = cold:execute("1", { identifier = "cold-plot" })
    assert.are.equal("True", r0.headers["x-ms-new-allocation"])
    assert.are_not.equal("0", r0.headers["x-ms-allocation-time"])   -- started for it
    local cold_size, cold_settings = figure(cold, "cold-plot")
    local warm_size, warm_settings = figure(warm, "warm-plot")
    assert.are.same(warm_size, cold_size)
    assert.are.same(warm_settings.properties.result, cold_settings.properties.result)
    assert.matches("matplotlib_inline", cold_settings.properties.result)
    assert.matches("'Agg', 'agg'%)$", cold_settings.properties.result)   -- children keep Agg
    -- and a second figure in the same cold session, after the first one loaded it all
    assert.are.same(warm_size, (figure(cold, "cold-plot")))
  end)
end)

describe("sesh-pool session limits", function()
  local pool
  setup(function() pool = support.start{ args = { "--max-sessions", "2", "--cooldown", "3" } } end)
  teardown(function() pool:stop(); pool:cleanup() end)

  it("answers 429 with Retry-After beyond --max-sessions", function()
    assert.are.equal(200, pool:request{ path = "files", identifier = "max-one" }.status)
    assert.are.equal(200, pool:request{ path = "files", identifier = "max-two" }.status)
    local res = pool:request{ path = "files", identifier = "max-three" }
    assert.are.equal(429, res.status)
    assert.are.equal("SessionPoolFull", res.json.error.code)
    assert.matches("^%d+$", res.headers["retry-after"])
    local del = pool:request{ method = "DELETE", path = "session", identifier = "max-one", api_version = V2 }
    assert.are.equal(204, del.status)
    assert.are.equal(200, pool:request{ path = "files", identifier = "max-three" }.status)
    pool:request{ method = "DELETE", path = "session", identifier = "max-two", api_version = V2 }
    pool:request{ method = "DELETE", path = "session", identifier = "max-three", api_version = V2 }
  end)

  it("removes a session idle longer than --cooldown, files and all, but not a busy one", function()
    local up = pool:request{ method = "POST", path = "files/upload", identifier = "cool-idle",
                             multipart = { { name = "file", filename = "f.txt", data = "x" } } }
    assert.are.equal(200, up.status)
    local state = pool.line:match("state dir ([^,]+),")
    assert.matches("s%-%x+", support.sh("ls " .. support.quote(state)))
    -- a call a second keeps cool-busy alive until the pool removes cool-idle
    local removed = function() return pool:log():find("idle for 3 s, removed", 1, true) end
    for _ = 1, 20 do
      pool:request{ path = "files", identifier = "cool-busy" }
      if util.wait(removed, 1) then break end
    end
    assert.is_truthy(removed(), "the idle session was not removed")
    local gone = pool:request{ path = "session", identifier = "cool-idle", api_version = V2 }
    assert.are.equal(404, gone.status)
    local alive = pool:request{ path = "session", identifier = "cool-busy", api_version = V2 }
    assert.are.equal(200, alive.status)
    local list = pool:request{ path = "files", identifier = "cool-idle" }   -- a new, empty session
    assert.are.same({}, list.json.value)
  end)
end)
