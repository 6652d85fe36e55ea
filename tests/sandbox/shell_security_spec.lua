-- The security suite's probes as shell commands in the sessions of a Shell
-- pool (--container-type Shell): the same attempts (sandbox/probes.lua), run
-- by python3 from the shell, come to the same outcomes as the Python cells of
-- security_spec.lua; the attacks on the session itself are made with the
-- shell's own means (a fork bomb, loops, a shell that kills itself). After
-- each, a bystander's shell still works, and after attacks on shared limits a
-- brand-new session starts too.
local support = require "support.pool"
local probes = require "sandbox.probes"

local V = "2025-02-02-preview"

describe("sandbox security through a Shell pool's commands", function()
  local pool
  local n = 0

  setup(function()
    pool = support.start{ args = probes.pool_args(support, { "--container-type", "Shell" }) }
  end)
  teardown(function()
    if pool then pool:stop(); pool:cleanup() end
  end)

  -- A command in session id; the execution resource.
  local function run(id, command, o)
    o = o or {}
    local body = { shellCommand = command, stdin = o.stdin, timeoutInSeconds = o.timeout_s }
    local res = pool:request{ method = "POST", path = "executions", identifier = id, api_version = V,
                              json = body }
    assert.are.equal(200, res.status, res.body)
    return res.json, res.json.result
  end

  local function attacker()
    n = n + 1
    return "attacker-" .. n
  end

  local function contained(new_session)
    local j, r = run("bystander", "echo $((6 * 7)) $SECRET")
    assert.are.equal("0", j.status, r.stderr)
    assert.are.equal("42 bystander state\n", r.stdout, r.stderr)
    if new_session then
      local k, q = run(attacker(), "echo $((6 * 7))")
      assert.are.equal("42\n", q.stdout, q.stderr)
      assert.are.equal("0", k.status)
    end
  end

  -- A probe's Python, run by python3 from the shell.
  local function python(id, code, o)
    o = o or {}
    o.stdin = code
    return run(id, "python3 -", o)
  end

  local function denied(code)
    local j, r = python(attacker(), probes.PRELUDE .. code)
    assert.are.equal("0", j.status, r.stderr)
    assert.is_nil(r.stdout:match("ALLOWED"), r.stdout)
    assert.is_nil(r.stdout:match("BROKEN"), r.stdout)
    assert.is_truthy(r.stdout:match("denied"), r.stdout)
    return r
  end

  it("starts the bystander", function()
    local j = run("bystander", "SECRET='bystander state'; echo b > mine.txt")
    assert.are.equal("0", j.status)
  end)

  it("tells an attempt the system denied from a probe that broke", function()
    local _, r = python(attacker(), probes.PRELUDE .. "attempt('shadow', lambda: open('/etc/shadow').read())\n" ..
                                    "attempt('typo', lambda: os.lisdir('/root'))")
    assert.matches("shadow denied %d+\n", r.stdout)
    assert.matches("typo BROKEN AttributeError", r.stdout)
  end)

  for _, probe in ipairs(probes.DENIED) do
    it(probe.title, function()
      local r = denied(probe.code(pool))
      if probe.expect then assert.matches(probe.expect, r.stdout, 1, true) end
      contained()
    end)
  end

  it("keeps the same out of reach of the shell's own tools", function()
    local j, r = run(attacker(), "cat /etc/shadow; ls /root; ls " .. support.quote(pool.state_dir) ..
                                 "; echo x > /usr/x; echo x > /etc/x; cat " .. support.quote(pool.token_file) ..
                                 "; grep -rlsF " .. support.quote(pool.token) .. " /etc /mnt /tmp /dev /run /var" ..
                                 "; ls /mnt/data/mine.txt; echo done")
    assert.are.equal("0", j.status)
    assert.are.equal("done\n", r.stdout)
    for _, why in ipairs{ "/etc/shadow: No such file or directory", "/root': No such file or directory",
                          "/usr/x: Read-only file system", "/etc/x: Read-only file system",
                          "mine.txt': No such file or directory" } do
      assert.matches(why, r.stderr, 1, true)
    end
    contained()
  end)

  it("keeps the runner's channel out of the shell's reach", function()
    local _, r = run(attacker(), "ls /proc/$$/fd; sh -c 'ls /proc/$$/fd'")
    for fd in r.stdout:gmatch("%d+") do
      assert.is_true(fd ~= "3", "descriptor 3 is open: " .. r.stdout)
    end
    contained()
  end)

  it("shows only the sandbox's own processes in /proc", function()
    local _, r = run(attacker(), ("ls /proc | grep -c '^[0-9]'; [ -e /proc/%d/environ ] && echo pool-seen"):format(pool.pid))
    local count = tonumber(r.stdout:match("^(%d+)"))
    assert.is_true(count <= 6, r.stdout)          -- init, runner, bash, ls, grep, the subshell
    assert.is_nil(r.stdout:match("pool%-seen"))
    contained()
  end)

  it("cannot ptrace, mount or unshare", function()
    local id = attacker()
    for _, call in ipairs(probes.SYSCALLS) do
      local _, r = python(id, probes.libc_call(call))
      assert.are.equal("-1 1\n", r.stdout, call .. ": " .. r.stderr)
    end
    local _, r = run(id, "unshare -U true; mount -t tmpfs none /tmp")
    assert.matches("unshare failed: Operation not permitted", r.stderr, 1, true)
    contained()
  end)

  it("survives a fork bomb", function()
    -- in the foreground: the command runs until its timeout kills all of it
    local j, r = run(attacker(), "bomb() { bomb | bomb; }; bomb", { timeout_s = 3 })
    assert.are.equal("-1", j.status, r.stderr)
    assert.truthy(r.stderr:match("timed out") or r.stderr:match("was lost"), r.stderr)
    contained(true)
  end)

  it("survives a fork bomb left in the background, which goes with its session", function()
    local id = attacker()
    local j = run(id, ":(){ :|:& };:")
    assert.are.equal("0", j.status)
    contained(true)
    local del = pool:request{ method = "DELETE", path = "session", identifier = id, api_version = V }
    assert.are.equal(204, del.status)
    contained(true)
  end)

  it("refuses to allocate 64 GB", function()
    local _, r = python(attacker(), "try:\n    big = bytearray(64 << 30)\nexcept MemoryError:\n    print('MemoryError')")
    assert.are.equal("MemoryError\n", r.stdout, r.stderr)
    contained()
  end)

  it("caps files in /mnt/data", function()
    -- a shell's programs get SIGXFSZ's default, as at a terminal: killed (128 + 25)
    local id = attacker()
    local j, r = run(id, "truncate -s 64G sparse")
    assert.are.equal("153", j.status)
    assert.matches("File size limit exceeded", r.stderr)
    local _, q = run(id, "stat -c %s sparse")
    assert.is_true(tonumber(q.stdout) < (64 << 20), q.stdout)
    contained()
  end)

  it("stops a command that fills /mnt/data, and lets the next one make room", function()
    local id = attacker()
    local j, r = run(id, "i=0; while :; do head -c 67108864 /dev/zero > fill$i || break; i=$((i+1)); done",
                     { timeout_s = 60 })
    assert.are.equal("-1", j.status, r.stderr)
    assert.are.equal("ExecutionStopped", j.error.code)
    assert.matches("over the session's limit", r.stderr)
    local k, q = run(id, "rm -f fill*; ls")
    assert.are.equal("0", k.status, q.stderr)
    assert.are.equal("", q.stdout)
    contained(true)
  end)

  it("fills /tmp only to its size", function()
    local j, r = run(attacker(), "head -c 4294967296 /dev/zero > /tmp/fill")
    assert.are.equal("1", j.status)
    assert.matches("No space left on device", r.stderr)
    contained()
  end)

  it("kills a command at its timeout and keeps the shell", function()
    local id = attacker()
    run(id, "KEPT='still here'")
    local j, r = run(id, "sleep 1000", { timeout_s = 2 })
    assert.are.equal("-1", j.status)
    assert.matches("timed out", r.stderr)
    local _, q = run(id, "echo $KEPT")
    assert.are.equal("still here\n", q.stdout)
    contained()
  end)

  it("replaces a shell stuck in a loop of its own, and the session goes on anew", function()
    local id = attacker()
    run(id, "trap '' INT TERM; KEPT=1")
    local j, r = run(id, "while :; do :; done", { timeout_s = 2 })
    assert.are.equal("-1", j.status)
    assert.matches("its shell would not stop and was killed too", r.stderr)
    local _, q = run(id, "echo again $KEPT")
    assert.are.equal("again\n", q.stdout)
    contained()
  end)

  it("caps 100 MB of output", function()
    local j, r = run(attacker(), "yes | head -c 100000000")
    assert.are.equal("0", j.status, r.stderr)
    assert.is_true(#r.stdout < 8192, "stdout of " .. #r.stdout .. " bytes")
    assert.matches("truncated", r.stdout)
    contained()
  end)

  it("recovers from a shell that kills itself", function()
    for _, command in ipairs{ "kill -9 $$", "exec false", "exit 1" } do
      local id = attacker()
      local j, r = run(id, command)
      assert.matches("the command ended the session's shell", r.stderr, 1, true)
      assert.is_truthy(j.status ~= "0", command)
      local _, q = run(id, "echo 1")
      assert.are.equal("1\n", q.stdout)
    end
    contained(true)
  end)

  it("does not follow a symlink in /mnt/data to /etc/passwd on download", function()
    local id = attacker()
    run(id, "ln -s /etc/passwd passwd")
    local res = pool:request{ path = "files/passwd/content", identifier = id, api_version = V }
    assert.is_true(res.status >= 400, "status " .. res.status)
    assert.is_nil((res.body or ""):match("root:x:0:0"))
    contained()
  end)
end)
