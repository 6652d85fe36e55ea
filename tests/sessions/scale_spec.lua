-- Big files stream (the host's peak memory stays small) and many sessions
-- work at once (the transport's multi interface under sessions.parallel).
local sessions = require "sessions"
local P = require "support.pool"
local S = require "support.azure_stub"

local SESH = (os.getenv("SESH_BUILD") or "build") .. "/bin/sesh"
local MB = 1024 * 1024

local q = require("support.util").quote

local now = require("sessions.core").monotonic     -- the one clock of every timing

describe("streaming", function()
  local pool
  setup(function() pool = P.start{ args = { "--max-upload", tostring(300 * MB) } } end)
  teardown(function() if pool then pool:stop(); pool:cleanup() end end)

  it("uploads and downloads 256 MB with the host's peak RSS under 64 MB", function()
    local dir = S.tmpdir("big")
    local src, dst = dir .. "/big.bin", dir .. "/back.bin"
    assert.is_true(os.execute(("head -c %d /dev/urandom > %s"):format(256 * MB, q(src))))
    local prog = dir .. "/stream.lua"
    local f = assert(io.open(prog, "w"))
    f:write(([[
      local sessions = require "sessions"
      local s = sessions.new{ endpoint = %q, token = %q, progress = false }
      local up = s:upload{ name = "big.bin", file = %q }
      assert(up.size == %d, "uploaded size " .. tostring(up.size))
      s:download("big.bin", %q)
      s:close()
      for line in io.lines("/proc/self/status") do
        local kb = line:match("^VmHWM:%%s+(%%d+) kB")
        if kb then print(kb) end
      end
    ]]):format(pool.endpoint, pool.token, src, 256 * MB, dst))
    f:close()
    local p = io.popen(SESH .. " " .. q(prog) .. " 2>&1")
    local out = p:read("a")
    local ok = p:close()
    assert.is_true(ok, out)
    local peak_kb = tonumber(out:match("^(%d+)\n$"))
    assert.is_number(peak_kb, out)
    assert.is_true(peak_kb < 64 * 1024, ("peak RSS %d kB"):format(peak_kb))
    assert.is_true(os.execute("cmp -s " .. q(src) .. " " .. q(dst)), "the file came back different")
    os.execute("rm -rf " .. q(dir))
  end)

  -- Runs a snippet in a sesh process; stdout and stderr apart.
  local function run_snippet(code, dir)
    local prog = dir .. "/snippet.lua"
    local f = assert(io.open(prog, "w")); f:write(code); f:close()
    local ok = os.execute(("%s %s >%s 2>%s"):format(SESH, q(prog), q(dir .. "/out"), q(dir .. "/err")))
    return ok, S.read(dir .. "/out"), S.read(dir .. "/err")
  end

  it("shows a progress bar on stderr for a big transfer when asked, and none when not", function()
    local dir = S.tmpdir("progress")
    assert.is_true(os.execute(("head -c %d /dev/zero > %s"):format(48 * MB, q(dir .. "/zeros"))))
    for _, want in ipairs{ true, false } do
      local ok, out, err = run_snippet(([[
        local s = require("sessions").new{ endpoint = %q, token = %q, progress = %s }
        s:upload{ name = "zeros", file = %q }
        s:download("zeros", %q)
        s:close()
        print("done")
      ]]):format(pool.endpoint, pool.token, tostring(want), dir .. "/zeros", dir .. "/back"), dir)
      assert.is_true(ok, err)
      assert.equal("done\n", out)
      if want then
        assert.matches("upload%s+%[", err)
        assert.matches("download%s*%[", err)
      else
        assert.equal("", err)
      end
    end
    os.execute("rm -rf " .. q(dir))
  end)

  it("stops a running execution on Ctrl-C with a clear error", function()
    local dir = S.tmpdir("sigint")
    local prog = dir .. "/snippet.lua"
    local f = assert(io.open(prog, "w"))
    f:write(([[
      local s = require("sessions").new{ endpoint = %q, token = %q }
      s:execute("1")
      io.stdout:write("ready\n"); io.stdout:flush()
      local ok, e = pcall(s.execute, s, "import time; time.sleep(30)")
      print(ok, e.kind, tostring(e))
    ]]):format(pool.endpoint, pool.token))
    f:close()
    local t0 = now()
    os.execute(("(%s %s >%s 2>&1 & pid=$!; " ..
                "for i in $(seq 100); do grep -q ready %s 2>/dev/null && break; sleep 0.1; done; " ..
                "sleep 0.5; kill -INT $pid; wait $pid)"):format(SESH, q(prog), q(dir .. "/out"), q(dir .. "/out")))
    local out = S.read(dir .. "/out")
    assert.matches("false\tinterrupted\tsessions: execute failed: .*interrupted", out)
    assert.is_true(now() - t0 < 20, "Ctrl-C did not stop the wait promptly")
    os.execute("rm -rf " .. q(dir))
  end)
end)

describe("parallel work", function()
  local pool
  setup(function() pool = P.start{ args = { "--ready-sessions", "2" } } end)
  teardown(function() if pool then pool:stop(); pool:cleanup() end end)

  it("runs eight one-second executions on eight sessions in under four seconds", function()
    local list = {}
    for i = 1, 8 do list[i] = pool:session{} end
    sessions.parallel(list, function(s) return s:execute("import time") end)   -- each has run once
    local t0 = now()
    local results = sessions.parallel(list, function(s, i)
      return s:run(("time.sleep(1)\n%d * 10"):format(i))
    end)
    local took = now() - t0
    for i = 1, 8 do assert.equal(i * 10, results[i]) end
    assert.is_true(took < 4, ("took %.2f s"):format(took))
    sessions.parallel(list, function(s) return s:close() end)
  end)

  it("gathers results in order and raises the first error after all ended", function()
    local a, b = pool:session{}, pool:session{}
    local x, y = sessions.gather(function() return a:run("1 + 1") end, function() return b:run("'two'") end)
    assert.equal(2, x)
    assert.equal("two", y)
    local ok, e = pcall(sessions.gather,
      function() return a:run("1/0") end,
      function() return b:run("import time; time.sleep(0.3); 3") end)
    assert.is_false(ok)
    assert.equal("python", e.kind)
    assert.equal("ZeroDivisionError", e.code)
    local results, errs = sessions.parallel({ "1", "1/0", "2" }, function(code) return a:run(code) end,
                                            { errors = "collect", limit = 2 })
    assert.equal(1, results[1]); assert.equal(2, results[3])
    assert.equal("python", errs[2].kind)
    a:close(); b:close()
  end)

  it("uploads to many sessions at once", function()
    local list = {}
    for i = 1, 4 do list[i] = pool:session{} end
    local names = sessions.parallel(list, function(s, i)
      s:upload{ name = "part.txt", data = ("x"):rep(i * 1000) }
      return s:run("import os; os.path.getsize('part.txt')")
    end)
    assert.same({ 1000, 2000, 3000, 4000 }, names)
    for _, s in ipairs(list) do s:close() end
  end)
end)
