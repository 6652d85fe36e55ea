-- The security suite, through a real sesh-pool over HTTP: each attack runs as
-- code inside a session and is asserted contained, and afterwards another
-- session (the bystander) still works and a brand-new session still starts.
local support = require "support.pool"

-- Python that prints, per attempt, "<name> ALLOWED", "<name> denied <errno>"
-- (the system said no: an OSError) or "<name> BROKEN <exception>" (the probe
-- itself failed, and proves nothing).
local PROBES = [[
import os, socket
def attempt(name, fn):
    try:
        fn()
        print(name, 'ALLOWED')
    except OSError as e:
        print(name, 'denied', e.errno)
    except Exception as e:
        print(name, 'BROKEN', type(e).__name__, e)
]]

-- Python printing "<result> <errno>" for a libc call made through ctypes.
local function libc_call(call)
  return "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n" ..
         "libc.syscall.restype = ctypes.c_long\n" ..
         "r = " .. call .. "\nprint(r, ctypes.get_errno())"
end

-- A small disk allowance keeps "fill /mnt/data" cheap, where the pool offers one.
local function pool_args()
  -- a fresh session per attack: more than a small host's memory-derived --max-sessions
  local args = { "--timeout", "60", "--max-output", "4096", "--max-sessions", "100" }
  if support.sh(support.quote(support.binary()) .. " --help"):match("%-%-max%-disk") then
    args[#args + 1] = "--max-disk"; args[#args + 1] = tostring(64 << 20)
  end
  return args
end

describe("sandbox security through the pool", function()
  local pool
  local n = 0

  setup(function()
    pool = support.start{ args = pool_args() }
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

  it("keeps /etc/shadow, /root and /home out of reach", function()
    denied("attempt('shadow', lambda: open('/etc/shadow').read())\n" ..
           "attempt('root', lambda: os.listdir('/root'))\n" ..
           "attempt('home', lambda: os.listdir('/home'))")
    contained()
  end)

  it("keeps the pool's token file out of reach, by path and by content", function()
    local p = denied(("attempt('token', lambda: open(%q).read())\n"):format(pool.token_file) ..
                     "import subprocess\n" ..
                     ("r = subprocess.run(['grep', '-rlsF', %q, '/etc', '/mnt', '/tmp', '/dev', " ..
                      "'/run', '/var', '/opt', '/srv', '/home', '/root'], capture_output=True)\n"):format(pool.token) ..
                     "print('found:', r.stdout)")
    assert.matches("found: b''", p.stdout, 1, true)
    contained()
  end)

  it("keeps another session's /mnt/data out of reach", function()
    local p = denied(("attempt('state dir', lambda: os.listdir(%q))\n"):format(pool.state_dir) ..
                     "print('mine.txt' in os.listdir('/mnt/data'))")
    assert.matches("False", p.stdout)
    assert.are.equal("bystander state\n", run("bystander", "print(secret)").stdout)
    contained()
  end)

  it("shows only the sandbox's own processes in /proc", function()
    local p = run(attacker(), ("import os\npids = [int(p) for p in os.listdir('/proc') if p.isdigit()]\n" ..
                               "print(len(pids) <= 3, os.path.exists('/proc/%d/environ'))"):format(pool.pid))
    assert.are.equal("True False\n", p.stdout, p.stderr)
    contained()
  end)

  it("refuses writes outside /mnt/data and /tmp", function()
    denied("for path in ['/usr/x', '/etc/x', '/x', '/var/x', '/mnt/x', '/proc/x', '/dev/x']:\n" ..
           "    attempt(path, lambda: open(path, 'w').write('x'))\n" ..
           "attempt('sysctl', lambda: open('/proc/sys/kernel/hostname', 'w').write('x'))")
    local p = run(attacker(), "open('/mnt/data/ok', 'w').write('1')\nopen('/tmp/ok', 'w').write('1')\nprint('wrote')")
    assert.are.equal("wrote\n", p.stdout, p.stderr)
    contained()
  end)

  it("cannot connect to the pool's own port nor to an outside address", function()
    local port = assert(pool.endpoint:match(":(%d+)$"), pool.endpoint)
    denied(("attempt('pool', lambda: socket.create_connection(('127.0.0.1', %s), timeout=3))\n"):format(port) ..
           -- 192.0.2.1 is TEST-NET-1: it cannot leave a sandbox without network
           "attempt('outside', lambda: socket.create_connection(('192.0.2.1', 80), timeout=3))\n" ..
           "attempt('dns', lambda: socket.getaddrinfo('example.com', 80))")
    contained()
  end)

  it("cannot ptrace, mount or unshare", function()
    local id = attacker()
    for _, call in ipairs{ "libc.ptrace(16, 1, 0, 0)",                       -- PTRACE_ATTACH to pid 1
                           "libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)",
                           "libc.unshare(0x10000000)",                        -- CLONE_NEWUSER
                           "libc.unshare(0x00020000)" } do                    -- CLONE_NEWNS
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
