-- One session's memory is bounded as a whole (--session-memory, cgroups):
-- its processes and its files in /tmp and /dev/shm together; past it the
-- kernel kills that session's processes only, and the execution says so.
-- The default --max-sessions fits the host's memory.
local support = require "support.pool"
local util = require "support.util"

local MiB = 1 << 20
local LIMIT = 256 * MiB
local V2 = "2025-10-02-preview"

local function health(pool)
  return pool:request{ path = "health", auth = false, identifier = false, api_version = false }
end

local function mem_total()
  return tonumber(util.read("/proc/meminfo"):match("MemTotal:%s+(%d+) kB")) * 1024
end

local function rss(pid)
  return tonumber(util.read("/proc/" .. pid .. "/status"):match("VmRSS:%s+(%d+) kB")) * 1024
end

-- The directory of a pool's own group in the hierarchy that bounds memory:
-- <own>/sesh-pool-<pid> on v1 (the pool stays in its group), the parent of
-- the leaf the pool moved into on v2.
local function pool_group(pid, version)
  local cgroup = util.read("/proc/" .. pid .. "/cgroup") or ""
  local path
  if version == "v1" then
    for line in cgroup:gmatch("[^\n]+") do
      local ctls, p = line:match("^%d+:([^:]*):(.*)$")
      if ctls and ("," .. ctls .. ","):find(",memory,", 1, true) then path = p end
    end
  else
    path = cgroup:match("0::([^\n]*)")
  end
  for line in util.read("/proc/self/mountinfo"):gmatch("[^\n]+") do
    local f = {}
    for w in line:gmatch("%S+") do f[#f + 1] = w end
    local sep
    for i = 7, #f do if f[i] == "-" then sep = i; break end end
    local fstype, super = f[sep + 1], f[sep + 3] or ""
    local match = version == "v1" and fstype == "cgroup" and ("," .. super .. ","):find(",memory,", 1, true)
                  or version == "v2" and fstype == "cgroup2"
    if match then
      local root, dir = f[4], f[5]
      local rest = root == "/" and path or path:sub(#root + 1)
      local own = dir .. (rest == "/" and "" or rest)
      return version == "v1" and (own .. "/sesh-pool-" .. pid) or own:match("^(.*)/pool$")
    end
  end
end

local function is_dir(path) return os.execute("test -d " .. util.quote(path)) == true end

local function groups_in(dir)   -- the sandboxes' groups under a pool's group
  local out = support.sh("find " .. util.quote(dir) .. " -mindepth 1 -maxdepth 2 -type d -name 'sb-*'")
  local list = {}
  for d in out:gmatch("[^\n]+") do list[#list + 1] = d end
  return list
end

local function wait_for(fn, seconds)   -- polls a condition on the system, at most that long
  for _ = 1, (seconds or 20) * 20 do
    if fn() then return true end
    support.sleep(0.05)
  end
  return false
end

-- Three processes of 150 MB, each holding it until all three have it (or
-- died trying): with 256 MiB for the whole session, not all can.
local THREE_PROCESSES = [[
import subprocess, sys
code = 'import sys; b = bytearray(150 << 20); print(1, flush=True); sys.stdin.read()'
procs = [subprocess.Popen([sys.executable, '-c', code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
         for _ in range(3)]
held = sum(p.stdout.readline() == b'1\n' for p in procs)
for p in procs: p.stdin.close()
print(held, sorted(p.wait() for p in procs))
]]

-- 200 MB in /tmp and 60 MB in /dev/shm: within both file systems' sizes, past the session's memory.
local FILL_TMPFS = [[
block = b'x' * (1 << 20)
for path, n in (('/tmp/fill', 200), ('/dev/shm/fill', 60)):
    with open(path, 'wb') as f:
        for _ in range(n): f.write(block)
print('all written')
]]

describe("sesh-pool session memory", function()
  local pool
  setup(function()
    pool = support.start{ args = { "--session-memory", tostring(LIMIT), "--timeout", "120" } }
  end)
  teardown(function() pool:stop(); pool:cleanup() end)

  it("derives --max-sessions from the host's memory and says so in its start-up line", function()
    local n, memory = pool.line:match("max sessions (%d+) %((%d+) bytes of memory at session memory each%)")
    assert.is_not_nil(n, pool.line)
    n, memory = tonumber(n), tonumber(memory)
    assert.is_true(memory > 0 and memory <= mem_total(), "memory " .. memory)
    assert.are.equal(math.max(1, math.min(600, memory // LIMIT)), n)
    assert.matches("session memory " .. LIMIT .. " bytes", pool.line)
    -- at least one session, however large each may be; an explicit value stands
    local big = support.start{ args = { "--session-memory", tostring(1 << 50) } }
    assert.matches("max sessions 1 %(", big.line)
    big:stop(); big:cleanup()
    local given = support.start{ args = { "--max-sessions", "7" } }
    assert.matches("max sessions 7, session memory 1073741824 bytes", given.line)
    given:stop(); given:cleanup()
  end)

  it("lists --session-memory in --help and refuses less than a session needs", function()
    local bin = util.quote(support.binary())
    assert.matches("%-%-session%-memory BYTES", support.sh(bin .. " --help"))
    local out = support.sh(bin .. " --session-memory 1000000 2>&1; echo exit=$?")
    assert.matches("%-%-session%-memory wants a whole number from 67108864", out)
    assert.matches("exit=2", out)
  end)

  it("says in /health whether the limits are enforced", function()
    local l = health(pool).json.limits
    assert.are.equal(LIMIT, l.sessionMemory)
    assert.are.equal(tonumber(pool.line:match("max sessions (%d+)")), l.maxSessions)
    if l.enforced then
      assert.matches("^v[12]$", l.cgroup)
      assert.matches("memory", l.controllers)
      assert.is_nil(l.warning)
      assert.matches("session memory " .. LIMIT .. " bytes %(cgroup " .. l.cgroup .. "%)", pool.line)
      assert.matches("session limits: " .. LIMIT .. " bytes of memory each.*enforced by cgroup", pool:log())
    else
      -- only where no cgroup can be had (a user's pool without delegation): said, with why
      assert.are_not.equal("0", support.sh("id -u"):gsub("%s", ""), "a root pool must enforce them")
      assert.matches("not bounded as a whole", l.warning)
      assert.matches("WARNING: sessions' memory and CPU are not bounded", pool:log())
      assert.matches("session memory " .. LIMIT .. " bytes %(not enforced", pool.line)
    end
  end)

  it("stops a session past its memory in several processes, with a clear error; others go on", function()
    assert.is_true(health(pool).json.limits.enforced, "no cgroup: see the previous test")
    local _, b = pool:execute("kept = 42", { identifier = "mem-bystander" })
    assert.are.equal("Success", b.status)
    local _, k = pool:execute("mine = 'still here'", { identifier = "mem-hog" })
    assert.are.equal("Success", k.status)

    local res, p = pool:execute(THREE_PROCESSES, { identifier = "mem-hog" })
    assert.are.equal(200, res.status)
    assert.are.equal("Failure", p.status)
    local held, first = p.stdout:match("^(%d) %[(%-?%d+)")
    assert.is_true(tonumber(held) < 3, p.stdout)
    assert.are.equal("-9", first)                  -- killed by the kernel
    assert.matches("ran out of memory", p.stderr)
    assert.matches(LIMIT .. " bytes", p.stderr)
    assert.matches("%-%-session%-memory", p.stderr)

    -- the pool, the bystander and the session itself are fine
    assert.is_true(pool:alive())
    assert.is_true(rss(pool.pid) < LIMIT, "pool RSS " .. rss(pool.pid))
    assert.are.equal("Healthy", health(pool).json.status)
    assert.are.equal(42, select(2, pool:execute("kept", { identifier = "mem-bystander" })).result)
    assert.are.equal("still here", select(2, pool:execute("mine", { identifier = "mem-hog" })).result)
  end)

  it("counts files in /tmp and /dev/shm against the session's memory", function()
    pool:execute("open('keep.txt', 'w').write('kept')", { identifier = "mem-tmpfs" })
    local r = pool:request{ method = "POST", path = "executions", identifier = "mem-tmpfs", api_version = V2,
                            json = { code = FILL_TMPFS, codeInputType = "Inline", executionType = "Synchronous",
                                     timeoutInSeconds = 120 } }
    assert.are.equal(200, r.status)
    assert.are.equal("Failed", r.json.status)
    assert.is_nil(r.json.result.stdout:match("all written"))
    assert.matches("ran out of memory", r.json.result.stderr)
    assert.matches("/tmp and /dev/shm included", r.json.result.stderr)
    -- the next call works (in a new interpreter if the kernel chose the old one), files kept
    local _, p = pool:execute("open('keep.txt').read()", { identifier = "mem-tmpfs" })
    assert.are.equal("kept", p.result)
    assert.is_true(pool:alive())
    assert.are.equal(42, select(2, pool:execute("kept", { identifier = "mem-bystander" })).result)
  end)
end)

describe("sesh-pool cgroups", function()
  it("removes a session's group with it, its own at exit, and a killed pool's at the next start", function()
    local args = { "--session-memory", tostring(LIMIT) }
    local first = support.start{ args = args }
    local version = health(first).json.limits.cgroup
    assert.is_not_nil(version, "no cgroup here")
    local group = pool_group(first.pid, version)
    assert.is_true(group and is_dir(group), "no group " .. tostring(group))

    first:execute("1", { identifier = "cg-one" })
    assert.are.equal(1, #groups_in(group))
    first:request{ method = "DELETE", path = "session", identifier = "cg-one", api_version = V2 }
    assert.is_true(wait_for(function() return #groups_in(group) == 0 end), "the session's group stayed")
    first:stop()
    assert.is_false(is_dir(group), "the pool's group stayed after it stopped")

    -- killed: its groups stay until the next pool starts
    local killed = support.start{ args = args }
    local stale = pool_group(killed.pid, version)
    killed:execute("1", { identifier = "cg-two" })
    local sb = groups_in(stale)[1]
    assert.is_not_nil(sb)
    killed:stop("KILL")
    assert.is_true(wait_for(function() return util.read(sb .. "/cgroup.procs") == "" end),
                   "the killed pool's sandbox lives on")
    assert.is_true(is_dir(stale))
    local next_pool = support.start{ args = args }
    assert.is_false(is_dir(stale), "the killed pool's group was not removed")
    next_pool:stop()
    for _, p in ipairs{ first, killed, next_pool } do p:cleanup() end
  end)
end)
