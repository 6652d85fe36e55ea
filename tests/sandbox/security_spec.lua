-- The security suite, through a real sesh-pool over HTTP: each attack runs as
-- code inside a session and is asserted contained, and afterwards another
-- session (the bystander) still works and a brand-new session still starts.
-- The probes (sandbox/probes.lua) run as shell commands too, in
-- shell_security_spec.lua.
local support = require "support.pool"

local probes = require "sandbox.probes"
local PROBES, libc_call = probes.PRELUDE, probes.libc_call

describe("sandbox security through the pool", function()
  local pool
  local n = 0

  setup(function()
    pool = support.start{ args = probes.pool_args(support) }
  end)
  teardown(function()
    if pool then pool:stop(); pool:cleanup() end
  end)

  local function run(id, code, timeout_s)
    local res, p = pool:execute(code, { identifier = id, timeout_s = timeout_s })
    assert.are.equal(200, res.status, res.body)
    return p
  end

  -- A fresh session for each attack.
  local function attacker()
    n = n + 1
    return "attacker-" .. n
  end

  -- The pool and other sessions go on, whatever the attack did; after
  -- attacks on shared limits, a brand-new session starts too.
  local function contained(new_session)
    local p = run("bystander", "print(6 * 7)")
    assert.are.equal("42\n", p.stdout, p.stderr)
    if new_session then
      local q = run(attacker(), "6 * 7")
      assert.are.equal(42, q.result, q.stderr)
    end
  end

  local function denied(code)
    local p = run(attacker(), PROBES .. code)
    assert.are.equal("Success", p.status, p.stderr)
    assert.is_nil(p.stdout:match("ALLOWED"), p.stdout)
    assert.is_nil(p.stdout:match("BROKEN"), p.stdout)
    assert.is_truthy(p.stdout:match("denied"), p.stdout)
    return p
  end

  it("tells an attempt the system denied from a probe that broke", function()
    local p = run(attacker(), PROBES .. "attempt('shadow', lambda: open('/etc/shadow').read())\n" ..
                              "attempt('typo', lambda: os.lisdir('/root'))")
    assert.matches("shadow denied %d+\n", p.stdout)
    assert.matches("typo BROKEN AttributeError", p.stdout)
    assert.is_false(pcall(denied, "attempt('typo', lambda: os.lisdir('/root'))"))
  end)

  it("starts the bystander", function()
    local p = run("bystander", "secret = 'bystander state'\nopen('mine.txt', 'w').write('b')")
    assert.are.equal("Success", p.status, p.stderr)
  end)

  for _, probe in ipairs(probes.DENIED) do
    it(probe.title, function()
      local p = denied(probe.code(pool))
      if probe.expect then assert.matches(probe.expect, p.stdout, 1, true) end
      if probe.bystander then
        assert.are.equal("bystander state\n", run("bystander", "print(secret)").stdout)
      end
      contained()
    end)
  end

  it("writes to /mnt/data and /tmp", function()
    local p = run(attacker(), "open('/mnt/data/ok', 'w').write('1')\nopen('/tmp/ok', 'w').write('1')\nprint('wrote')")
    assert.are.equal("wrote\n", p.stdout, p.stderr)
  end)

  it("cannot ptrace, mount or unshare", function()
    local id = attacker()
    for _, call in ipairs(probes.SYSCALLS) do
      local p = run(id, libc_call(call))
      assert.are.equal("-1 1\n", p.stdout, call .. ": " .. p.stderr)
    end
    contained()
  end)

  it("survives a fork bomb", function()
    local p = run(attacker(), "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n" ..
                              "        pass", 3)
    assert.are.equal("Failure", p.status)
    assert.truthy(p.stderr:match("timed out") or p.stderr:match("was lost"), p.stderr)
    contained(true)
  end)

  it("refuses to allocate 64 GB", function()
    local p = run(attacker(), "try:\n    big = bytearray(64 << 30)\nexcept MemoryError:\n    print('MemoryError')")
    assert.are.equal("MemoryError\n", p.stdout, p.stderr)
    contained()
  end)

  it("caps files in /mnt/data", function()
    local p = run(attacker(), "import os\nwith open('sparse', 'wb') as f:\n    try:\n" ..
                              "        f.truncate(64 << 30)\n    except OSError as e:\n        print(e.errno)")
    assert.are.equal("27\n", p.stdout, p.stderr)           -- EFBIG
    contained()
  end)

  it("stops code that fills /mnt/data", function()
    local id = attacker()
    local p = run(id, "block = b'x' * (4 << 20)\ni = 0\nwhile True:\n" ..
                      "    with open('fill%d' % i, 'wb') as f:\n" ..
                      "        for _ in range(16): f.write(block)\n    i += 1", 60)
    assert.are.equal("Failure", p.status)
    assert.matches("over the session's limit", p.stderr)
    local q = run(id, "import os\nfor f in os.listdir('.'): os.remove(f)\nprint(os.listdir('.'))")
    assert.are.equal("[]\n", q.stdout, q.stderr)
    contained(true)
  end)

  it("stops code that fills /tmp", function()
    local p = run(attacker(), "block = b'x' * (1 << 20)\ntry:\n    with open('/tmp/fill', 'wb') as f:\n" ..
                              "        for _ in range(4096): f.write(block)\nexcept OSError as e:\n" ..
                              "    print(e.errno)")
    assert.are.equal("28\n", p.stdout, p.stderr)           -- ENOSPC
    contained()
  end)

  it("interrupts an infinite loop and keeps the session", function()
    local id = attacker()
    run(id, "kept = 'still here'")
    local p = run(id, "while True:\n    pass", 2)
    assert.matches("timed out", p.stderr)
    assert.matches("KeyboardInterrupt", p.stderr)
    assert.are.equal("still here\n", run(id, "print(kept)").stdout)
    contained()
  end)

  it("kills a loop that ignores KeyboardInterrupt, and the session goes on anew", function()
    local id = attacker()
    local p = run(id, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass", 2)
    assert.are.equal("Failure", p.status)
    assert.matches("was lost", p.stderr)
    local q = run(id, "print('again')")
    assert.are.equal("again\n", q.stdout, q.stderr)
    contained()
  end)

  it("caps 100 MB of output", function()
    local p = run(attacker(), "for _ in range(100):\n    print('y' * (1 << 20))")
    assert.are.equal("Success", p.status, p.stderr)
    assert.is_true(#p.stdout < 8192, "stdout of " .. #p.stdout .. " bytes")
    assert.matches("truncated", p.stdout .. p.stderr)
    contained()
  end)

  it("recovers from an interpreter that kills itself", function()
    for _, code in ipairs{ "import os\nos._exit(1)",
                           "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
                           "import ctypes\nctypes.string_at(0)" } do
      local id = attacker()
      local p = run(id, code)
      assert.are.equal("Failure", p.status)
      assert.matches("was lost", p.stderr)
      assert.are.equal("1\n", run(id, "print(1)").stdout)
    end
    contained(true)
  end)

  it("does not follow a symlink in /mnt/data to /etc/passwd on download", function()
    local id = attacker()
    run(id, "import os\nos.symlink('/etc/passwd', 'passwd')")
    local res = pool:request{ path = "files/content/passwd", identifier = id }
    assert.is_true(res.status >= 400, "status " .. res.status)
    assert.is_nil((res.body or ""):match("root:x:0:0"))
    contained()
  end)
end)
