-- The local pool: found or started by the module itself when no endpoint is
-- configured, one per user even when scripts start at once.  Each case runs
-- real `sesh` processes with their own XDG_RUNTIME_DIR and a real sesh-pool.
local S = require "support.azure_stub"
local P = require "support.pool"

local SESH = (os.getenv("SESH_BUILD") or "build") .. "/bin/sesh"
local started = {}     -- pids of pools these specs caused, stopped at the end

local q = require("support.util").quote

-- Runs a Lua snippet in a fresh sesh with XDG_RUNTIME_DIR=run; returns output, ok.
local function sesh(run, code, env)
  local file = run .. "/snippet-" .. math.random(1e9) .. ".lua"
  local f = assert(io.open(file, "w")); f:write(code); f:close()
  local p = io.popen(("env -u POOL_MANAGEMENT_ENDPOINT XDG_RUNTIME_DIR=%s %s %s %s 2>&1"):format(
    q(run), env or "", SESH, q(file)))
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end

local function pool_pid(run)
  local pid = tonumber(S.read(run .. "/sesh/pool.pid") or "")
  if pid then started[#started + 1] = pid end
  return pid
end

local function fresh_run()
  local run = S.tmpdir("run")
  os.execute("chmod 700 " .. q(run))
  return run
end

teardown(function()
  for _, pid in ipairs(started) do os.execute("kill " .. pid .. " 2>/dev/null") end
end)

local EXEC = [[
local s <close> = require("sessions").new{}
print(s:execute("6 * 7").result)
]]

describe("the local pool", function()
  it("is started on demand in $XDG_RUNTIME_DIR/sesh, private, and reused", function()
    local run = fresh_run()
    local out, ok = sesh(run, EXEC)
    assert.is_true(ok, out)
    assert.equal("42\n", out)
    local pid = pool_pid(run)
    assert.is_number(pid)
    assert.is_true(P.alive(pid))
    assert.equal("700", P.sh("stat -c %a " .. q(run .. "/sesh")):match("%d+"))
    assert.equal("600", P.sh("stat -c %a " .. q(run .. "/sesh/token")):match("%d+"))
    assert.equal("600", P.sh("stat -c %a " .. q(run .. "/sesh/pool.sock")):match("%d+"))
    out = sesh(run, EXEC)
    assert.equal("42\n", out)
    assert.equal(pid, pool_pid(run))      -- the same pool answered
  end)

  it("runs the quickstart against a running pool without starting a single process", function()
    -- the module's system calls are sessions.core's: no shell, no sleep, id or stat command
    assert.is_true(os.execute("command -v strace >/dev/null"), "strace is missing (make deps)")
    local run = fresh_run()
    assert.equal("42\n", (sesh(run, EXEC)))      -- the pool is up
    pool_pid(run)
    local log, out = run .. "/strace.log", run .. "/quickstart.out"
    os.execute(("env -u POOL_MANAGEMENT_ENDPOINT XDG_RUNTIME_DIR=%s strace -f -qq " ..
                "-e trace=fork,vfork,clone,clone3,execve -o %s %s scripts/quickstart.lua %s >%s 2>&1")
               :format(q(run), q(log), SESH, q(run), q(out)))
    assert.matches("saved the plot to", S.read(out) or "")
    local started, first = {}, true
    for line in (S.read(log) or ""):gmatch("[^\n]+") do
      local call = line:match("^%d+%s+(%w+)%(")     -- strace pads the pid to 5 columns
      if call == "execve" and first then
        first = false                          -- sesh itself
      elseif call == "execve" or call == "fork" or call == "vfork" or
             ((call == "clone" or call == "clone3") and not line:find("CLONE_THREAD", 1, true)) then
        started[#started + 1] = line
      end
    end
    assert.is_false(first, "strace saw nothing")
    assert.same({}, started)
  end)

  it("is started once when several scripts start at the same moment", function()
    local run = fresh_run()
    local files = {}
    for i = 1, 4 do
      files[i] = run .. "/out" .. i
      local f = assert(io.open(run .. "/s" .. i .. ".lua", "w")); f:write(EXEC); f:close()
    end
    local cmd = {}
    for i = 1, 4 do
      cmd[#cmd + 1] = ("XDG_RUNTIME_DIR=%s %s %s >%s 2>&1 &"):format(q(run), SESH, q(run .. "/s" .. i .. ".lua"), q(files[i]))
    end
    os.execute(table.concat(cmd, " ") .. " wait")
    for i = 1, 4 do assert.equal("42\n", S.read(files[i])) end
    pool_pid(run)
    local log = S.read(run .. "/sesh/pool.log") or ""
    local pids = {}
    for pid in log:gmatch("sesh%-pool%[(%d+)%]: listening on unix:") do pids[pid] = true end
    local n = 0
    for _ in pairs(pids) do n = n + 1 end
    assert.equal(1, n, log)
  end)

  it("is started again when the old one died and left its socket", function()
    local run = fresh_run()
    assert.equal("42\n", (sesh(run, EXEC)))
    local pid = pool_pid(run)
    os.execute("kill -KILL " .. pid)
    for _ = 1, 50 do if not P.alive(pid) then break end P.sleep(0.05) end
    assert.is_true(P.exists(run .. "/sesh/pool.sock"))
    assert.equal("42\n", (sesh(run, EXEC)))
    local pid2 = pool_pid(run)
    assert.not_equal(pid, pid2)
  end)

  it("stops by itself after its idle time without sessions, leaving nothing behind", function()
    local run = fresh_run()
    assert.equal("42\n", (sesh(run, EXEC, "SESH_POOL_IDLE_EXIT=2")))
    local pid = pool_pid(run)
    assert.is_true(P.alive(pid))
    for _ = 1, 200 do if not P.alive(pid) then break end P.sleep(0.1) end
    assert.is_false(P.alive(pid))
    assert.is_false(P.exists(run .. "/sesh/pool.sock"))
    assert.is_false(P.exists(run .. "/sesh/pool.pid"))
  end)

  it("refuses a state directory that others can open", function()
    local run = fresh_run()
    os.execute("mkdir -p " .. q(run .. "/sesh") .. " && chmod 755 " .. q(run .. "/sesh"))
    local out, ok = sesh(run, EXEC)
    assert.is_falsy(ok)
    assert.matches("sessions: local pool failed: the state directory .* is open to others %(mode 755%)", out)
  end)

  it("refuses a state directory that belongs to someone else", function()
    local run = fresh_run()
    os.execute("mkdir -p " .. q(run .. "/sesh") .. " && chmod 700 " .. q(run .. "/sesh") ..
               " && chown 65534 " .. q(run .. "/sesh"))
    local out, ok = sesh(run, EXEC)
    assert.is_falsy(ok)
    assert.matches("belongs to uid 65534, not to you", out)
  end)

  it("says so when the pool binary cannot be started", function()
    local run = fresh_run()
    local out, ok = sesh(run, EXEC, "SESH_POOL=/nonexistent/sesh-pool")
    assert.is_falsy(ok)
    assert.matches("sessions: local pool failed: could not start /nonexistent/sesh%-pool", out)
  end)

  it("is found and started from stock lua5.4 too (sessions.so next to the pool binary)", function()
    local run = fresh_run()
    local build = os.getenv("SESH_BUILD") or "build"
    local file = run .. "/stock.lua"
    local f = assert(io.open(file, "w")); f:write(EXEC); f:close()
    local p = io.popen(("env -u POOL_MANAGEMENT_ENDPOINT -u SESH_POOL XDG_RUNTIME_DIR=%s PATH=/usr/bin:/bin " ..
                        "LUA_CPATH=%s LUA_PATH=%s lua5.4 %s 2>&1"):format(q(run),
      q(build .. "/lib/lua/5.4/?.so"), q("lua/?.lua"), q(file)))
    local out = p:read("a")
    p:close()
    assert.equal("42\n", out)
    assert.is_number(pool_pid(run))
  end)

  it("is not used when POOL_MANAGEMENT_ENDPOINT is set", function()
    local run = fresh_run()
    local out, ok = sesh(run, [[
      local s = require("sessions").new{ token = "t", retries = 1 }
      print(s.endpoint)
      print(pcall(s.execute, s, "1"))
    ]], "POOL_MANAGEMENT_ENDPOINT=http://127.0.0.1:9/pool")
    assert.is_true(ok, out)
    assert.matches("^http://127%.0%.0%.1:9/pool\n", out)
    assert.matches("false\tsessions: execute failed: .*Couldn't connect", out)
    assert.is_nil(S.read(run .. "/sesh/pool.pid"))
  end)
end)
