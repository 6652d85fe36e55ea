-- The fork server (host/pool/zygote.h): sessions forked from one pre-loaded
-- interpreter, each seeded on its own and showing nothing of the server;
-- the server replaced when it dies, has forked its allowance or is too old;
-- bwrap where the fork path cannot be used.
local support = require "support.pool"
local util = require "support.util"

local function health(pool)
  local res = pool:request{ path = "health", auth = false, identifier = false, api_version = false }
  return res.json and res.json.forkServer or {}
end

-- Waits until the fork server is ready (a new one when `other_than` names the
-- pid of the last); returns its status, its pid as a whole number.
local function ready(pool, other_than)
  return util.wait(function()
    local s = health(pool)
    s.pid = s.pid and math.tointeger(s.pid)
    return s.state == "ready" and s.pid ~= other_than and s
  end, 120)
end

local function run(pool, id, code)
  local res, p = pool:execute(code, { identifier = id })
  assert.are.equal(200, res.status, res.body)
  assert.are.equal("Success", p.status, p.stderr)
  return p
end

-- The first word of the session's /proc/1/cmdline: its init's program.
local INIT = "print(open('/proc/1/cmdline', 'rb').read().split(b'\\0')[0].decode())"
local function init_of(pool, id)
  return run(pool, id, INIT).stdout
end

local n = 0
local function new_id()
  n = n + 1
  return ("forkserver-%d-%d"):format(n, os.time())
end

describe("the fork server", function()
  local pool
  setup(function()
    pool = support.start()
    assert.is_truthy(ready(pool), pool:log())
  end)
  teardown(function()
    if pool then pool:stop(); pool:cleanup() end
  end)

  it("forks the sessions: their init is its python, not bwrap", function()
    assert.are.equal("/usr/bin/python3\n", init_of(pool, new_id()))
  end)

  it("seeds each session on its own: random, numpy and uuid differ", function()
    local code = "import random, uuid, numpy\nprint(random.random(), numpy.random.rand(), uuid.uuid4())"
    local a = run(pool, new_id(), code).stdout
    local b = run(pool, new_id(), code).stdout
    local ra, na, ua = a:match("^(%S+) (%S+) (%S+)\n$")
    local rb, nb, ub = b:match("^(%S+) (%S+) (%S+)\n$")
    assert.is_truthy(ra and rb, a .. b)
    assert.are_not.equal(ra, rb)
    assert.are_not.equal(na, nb)
    assert.are_not.equal(ua, ub)
  end)

  it("starts each session's execution count at 1, with nothing of the server's cells", function()
    local id = new_id()
    local p = run(pool, id, "print(get_ipython().execution_count, In[:-1], Out)")
    assert.are.equal("1 [''] {}\n", p.stdout)
    assert.are.equal("2\n", run(pool, id, "print(get_ipython().execution_count)").stdout)
  end)

  it("shows nothing of the server: descriptors, environment, namespaces", function()
    local p = run(pool, new_id(),
      "import os, re\n" ..
      "fds = sorted((int(f), re.sub(r':\\[\\d+\\]', '', os.readlink('/proc/self/fd/' + f)))\n" ..
      "             for f in os.listdir('/proc/self/fd') if os.path.exists('/proc/self/fd/' + f))\n" ..
      "print([t for n, t in fds if n > 3])\n" ..
      "print(sorted(os.environ))")
    -- beyond 0-3, what a runner bwrap starts has too: IPython's /dev/null and the
    -- interrupt's census of the pid namespace (and the listing's own)
    assert.are.equal("['/dev/null', '/proc/sys/kernel/ns_last_pid']\n" ..
                     "['HOME', 'LANG', 'MPLBACKEND', 'MPLCONFIGDIR', 'PATH', 'PWD', " ..
                     "'PYTHONDONTWRITEBYTECODE', 'PYTHONUNBUFFERED']\n", p.stdout)
    local server = assert(ready(pool)).pid
    local q = run(pool, new_id(), ("import os\nprint(os.path.exists('/proc/%d'))"):format(server))
    assert.are.equal("False\n", q.stdout)
  end)

  it("is replaced when it is killed, and sessions keep coming, forked", function()
    local old = assert(ready(pool)).pid
    os.execute("kill -KILL " .. old)
    assert.is_truthy(util.wait(function()
      return pool:log():find("fork server: pid " .. old .. " killed by signal 9", 1, true)
    end), pool:log())
    local new = ready(pool, old)
    assert.is_truthy(new, pool:log())
    assert.are.equal("/usr/bin/python3\n", init_of(pool, new_id()))
  end)

end)

describe("the fork server's allowance", function()
  it("replaces a server after --fork-server-forks sandboxes, their sessions going on", function()
    local pool = support.start{ args = { "--fork-server-forks", "3" } }
    local old = assert(ready(pool), pool:log()).pid
    local ids = {}
    for i = 1, 3 do
      ids[i] = new_id()
      run(pool, ids[i], "kept = " .. i)
    end
    assert.is_truthy(util.wait(function()
      return pool:log():find("replaced pid " .. old .. ", which forked 3 sandboxes", 1, true)
    end, 120), pool:log())
    assert.are_not.equal(old, ready(pool).pid)
    assert.are.equal(1, health(pool).replacements)
    for i = 1, 3 do
      assert.are.equal(i .. "\n", run(pool, ids[i], "print(kept)").stdout)
    end
    assert.are.equal("/usr/bin/python3\n", init_of(pool, new_id()))
    pool:stop(); pool:cleanup()
  end)
end)

describe("the fork server's age", function()
  it("replaces a server older than --fork-server-age", function()
    local pool = support.start{ args = { "--fork-server-age", "1" } }
    local first = ready(pool)
    assert.is_truthy(first, pool:log())
    assert.is_truthy(util.wait(function()
      return pool:log():find("replaced pid " .. first.pid .. ", which forked 0 sandboxes (it reached its age", 1, true)
    end, 120), pool:log())
    assert.are.equal("/usr/bin/python3\n", init_of(pool, new_id()))
    pool:stop(); pool:cleanup()
  end)
end)

describe("without the fork server", function()
  it("starts sessions with bwrap when told so (--no-fork-server)", function()
    local pool = support.start{ args = { "--no-fork-server" } }
    local s = health(pool)
    assert.are.same({ "off", "--no-fork-server" }, { s.state, s.reason })
    assert.are.equal("/usr/bin/bwrap\n", init_of(pool, new_id()))
    pool:stop(); pool:cleanup()
  end)

  it("falls back to bwrap for good when the kernel refuses the fork path (setns denied)", function()
    -- A runtime's seccomp profile may refuse setns, which a forked sandbox
    -- needs to go back to the pool's mounts and bwrap does not.
    local pool = support.start{ prefix = { "/usr/bin/python3", "tests/support/seccomp_deny.py",
                                           "setns", "--" } }
    assert.is_truthy(ready(pool), pool:log())
    assert.are.equal("/usr/bin/bwrap\n", init_of(pool, new_id()))
    local s = health(pool)
    assert.are.equal("off", s.state)
    assert.matches("the first sandbox it forked did not start", s.reason)
    assert.matches("enter the pool's mount namespace: Operation not permitted", s.reason)
    assert.is_truthy(pool:log():find("fork server: off: ", 1, true))
    assert.are.equal("/usr/bin/bwrap\n", init_of(pool, new_id()))
    pool:stop(); pool:cleanup()
  end)
end)
