-- The security suite's probes, shared by its two runs: as Python cells
-- (security_spec.lua) and as shell commands in a Shell session
-- (shell_security_spec.lua), where each probe's Python runs through python3
-- and must come to the same outcome.
local probes = {}

-- Python that prints, per attempt, "<name> ALLOWED", "<name> denied <errno>"
-- (the system said no: an OSError) or "<name> BROKEN <exception>" (the probe
-- itself failed, and proves nothing).
probes.PRELUDE = [[
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
function probes.libc_call(call)
  return "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n" ..
         "libc.syscall.restype = ctypes.c_long\n" ..
         "r = " .. call .. "\nprint(r, ctypes.get_errno())"
end

-- System calls a session may not make: each prints "-1 1" (EPERM).
probes.SYSCALLS = {
  "libc.ptrace(16, 1, 0, 0)",                       -- PTRACE_ATTACH to pid 1
  "libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)",
  "libc.unshare(0x10000000)",                       -- CLONE_NEWUSER
  "libc.unshare(0x00020000)",                       -- CLONE_NEWNS
}

-- Attempts that must all be denied. code(pool) gives the attempts (after
-- the prelude); expect, when there, is text they must print too;
-- bystander: the bystander's state is checked afterwards too.
probes.DENIED = {
  { title = "keeps /etc/shadow, /root and /home out of reach",
    code = function()
      return "attempt('shadow', lambda: open('/etc/shadow').read())\n" ..
             "attempt('root', lambda: os.listdir('/root'))\n" ..
             "attempt('home', lambda: os.listdir('/home'))"
    end },
  { title = "keeps the pool's token file out of reach, by path and by content",
    code = function(pool)
      return ("attempt('token', lambda: open(%q).read())\n"):format(pool.token_file) ..
             "import subprocess\n" ..
             ("r = subprocess.run(['grep', '-rlsF', %q, '/etc', '/mnt', '/tmp', '/dev', " ..
              "'/run', '/var', '/opt', '/srv', '/home', '/root'], capture_output=True)\n"):format(pool.token) ..
             "print('found:', r.stdout)"
    end,
    expect = "found: b''" },
  { title = "keeps another session's /mnt/data out of reach",
    code = function(pool)
      return ("attempt('state dir', lambda: os.listdir(%q))\n"):format(pool.state_dir) ..
             "print('mine.txt' in os.listdir('/mnt/data'))"
    end,
    expect = "False",
    bystander = true },
  { title = "refuses writes outside /mnt/data and /tmp",
    code = function()
      return "for path in ['/usr/x', '/etc/x', '/x', '/var/x', '/mnt/x', '/proc/x', '/dev/x']:\n" ..
             "    attempt(path, lambda: open(path, 'w').write('x'))\n" ..
             "attempt('sysctl', lambda: open('/proc/sys/kernel/hostname', 'w').write('x'))"
    end },
  { title = "cannot connect to the pool's own port nor to an outside address",
    code = function(pool)
      local port = assert(pool.endpoint:match(":(%d+)$"), pool.endpoint)
      return ("attempt('pool', lambda: socket.create_connection(('127.0.0.1', %s), timeout=3))\n"):format(port) ..
             -- 192.0.2.1 is TEST-NET-1: it cannot leave a sandbox without network
             "attempt('outside', lambda: socket.create_connection(('192.0.2.1', 80), timeout=3))\n" ..
             "attempt('dns', lambda: socket.getaddrinfo('example.com', 80))"
    end },
}

-- A small disk allowance keeps "fill /mnt/data" cheap; a fresh session per
-- attack takes more than a small host's memory-derived --max-sessions.
function probes.pool_args(support, extra)
  local args = { "--timeout", "60", "--max-output", "4096", "--max-sessions", "100" }
  if support.sh(support.quote(support.binary()) .. " --help"):match("%-%-max%-disk") then
    args[#args + 1] = "--max-disk"; args[#args + 1] = tostring(64 << 20)
  end
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  return args
end

return probes
