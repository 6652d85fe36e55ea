-- sesh-pool's command line: startup line, token file, unix socket, daemon
-- mode, idle exit, clean stop on SIGTERM, restart after SIGKILL.
local support = require "support.pool"
local util = require "support.util"
local http = require "sessions.http"

local function mode(path)
  return (support.sh("stat -c %a " .. support.quote(path)):gsub("%s+$", ""))
end

-- Processes whose command line mentions text (sandboxes name their directory).
local function processes_mentioning(text)
  local found = {}
  for pid in support.sh("ls /proc"):gmatch("%d+") do
    local cmd = support.read("/proc/" .. pid .. "/cmdline")
    if cmd and cmd:find(text, 1, true) and tonumber(pid) ~= nil then found[#found + 1] = pid end
  end
  return found
end

local function run(args)
  local list = {}
  for _, a in ipairs(args) do list[#list + 1] = support.quote(a) end
  local p = io.popen(support.quote(support.binary()) .. " " .. table.concat(list, " ") .. " 2>&1; echo \"exit=$?\"")
  local out = p:read("a")
  p:close()
  return out, tonumber(out:match("exit=(%d+)%s*$"))
end

local function wait_gone(pid, seconds)
  for _ = 1, (seconds or 10) * 20 do
    if not support.alive(pid) then return true end
    support.sleep(0.05)
  end
  return false
end

describe("sesh-pool command line", function()
  it("prints its options with --help and exits 0", function()
    local out, code = run{ "--help" }
    assert.are.equal(0, code)
    for _, opt in ipairs{ "--listen", "--socket", "--token-file", "--state-dir", "--python",
                          "--idle-exit", "--daemon", "--ready-sessions", "--cooldown",
                          "--max-sessions", "--max-upload", "--timeout" } do
      assert.is_truthy(out:find(opt, 1, true), opt .. " missing from --help")
    end
  end)

  it("refuses an unknown option or a bad number with a message", function()
    local out, code = run{ "--bogus" }
    assert.are.equal(2, code)
    assert.matches("unknown option '%-%-bogus'", out)
    out, code = run{ "--max-sessions", "many" }
    assert.are.equal(2, code)
    assert.matches("%-%-max%-sessions wants a whole number", out)
  end)

  it("refuses a non-loopback address without an explicit token file", function()
    local out, code = run{ "--listen", "0.0.0.0:0", "--ready-sessions", "0" }
    assert.are.equal(1, code)
    assert.matches("not a loopback address", out)
  end)

  it("generates a 0600 token file, prints one startup line, and needs that token", function()
    local pool = support.start{}
    finally(function() pool:stop(); pool:cleanup() end)
    assert.matches("^sesh%-pool: listening on http://127%.0%.0%.1:%d+ %(token file ", pool.line)
    assert.is_truthy(pool.line:find(pool.token_file, 1, true))
    assert.are.equal("600", mode(pool.token_file))
    assert.matches("^%x+$", pool.token)
    assert.is_true(#pool.token >= 32)
    local res = pool:request{ path = "files", identifier = "cli-token" }
    assert.are.equal(200, res.status)
  end)

  it("reads an existing token file", function()
    local dir = support.tmpdir()
    local f = assert(io.open(dir .. "/token", "w"))
    f:write("  my-chosen-token-1234\n")
    f:close()
    local pid, out, err = support.spawn({ "--token-file", dir .. "/token", "--ready-sessions", "0" }, dir)
    finally(function() os.execute("kill " .. pid .. " 2>/dev/null") end)
    local line = assert(support.wait_line(pid, out, err))
    local url = line:match("(http://[^ ]+)")
    local c = http.client{}
    local res = c:request{ url = url .. "/files?identifier=cli-read&api-version=2024-02-02-preview",
                           headers = { Authorization = "Bearer my-chosen-token-1234" } }
    assert.are.equal(200, res.status)
    c:close()
    os.execute("kill " .. pid)
    assert.is_true(wait_gone(pid))
    os.execute("rm -rf " .. support.quote(dir))
  end)

  it("serves on a 0600 unix socket with a pid file beside it, and removes both on SIGINT", function()
    local pool = support.start{ socket = true }
    finally(function() pool:stop() end)
    assert.matches("listening on unix:" .. pool.socket:gsub("%p", "%%%0"), pool.line)
    assert.are.equal("600", mode(pool.socket))
    local pidfile = pool.dir .. "/pool.pid"
    assert.are.equal(tostring(pool.pid), (support.read(pidfile) or ""):match("%d+"))
    local res, p = pool:execute("6 * 7", { identifier = "cli-unix" })
    assert.are.equal(200, res.status)
    assert.are.equal(42, p.result)
    local state = pool.line:match("state dir ([^,]+),")
    assert.is_truthy(support.exists(state))
    assert.is_true(pool:stop("INT"))
    assert.is_false(support.exists(pool.socket))
    assert.is_false(support.exists(pidfile))
    assert.are.equal(0, #processes_mentioning(state), "a sandbox outlived the pool")
    assert.is_nil(io.open(state, "r") and support.sh("ls " .. support.quote(state)) or nil)
    pool:cleanup()
  end)

  it("with --idle-exit, waits while a session lives and exits after, removing socket and pid file", function()
    local pool = support.start{ socket = true, args = { "--idle-exit", "1", "--cooldown", "3" } }
    finally(function() pool:stop() end)
    local res = pool:request{ path = "files", identifier = "cli-idle" }
    assert.are.equal(200, res.status)
    -- alive as long as the session is (3 s of cooldown, longer than the idle exit)
    local removed = util.wait(function() return pool:log():find("idle for 3 s, removed", 1, true) end)
    assert.is_truthy(removed, "the session was not removed")
    assert.is_true(pool:alive(), "exited while a session was alive")
    assert.is_true(wait_gone(pool.pid, 15), "did not exit when idle")
    assert.is_false(support.exists(pool.socket))
    assert.is_false(support.exists(pool.dir .. "/pool.pid"))
    assert.matches("no session for 1 s", pool:log())
    pool:cleanup()
  end)

  it("detaches with --daemon once listening, logging beside the socket", function()
    local dir = support.tmpdir()
    local sock = dir .. "/pool.sock"
    local out, code = run{ "--socket", sock, "--token-file", dir .. "/token", "--daemon",
                           "--ready-sessions", "0", "--state-dir", dir .. "/state" }
    assert.are.equal(0, code)
    assert.matches("^sesh%-pool: listening on unix:", out)
    local pid = tonumber((support.read(dir .. "/pool.pid") or ""):match("%d+"))
    assert.is_truthy(pid)
    finally(function() os.execute("kill " .. pid .. " 2>/dev/null") end)
    assert.is_true(support.alive(pid))
    local c = http.client{ unix_socket = sock }
    local res = c:request{ url = "http://localhost/files?identifier=cli-daemon&api-version=2024-02-02-preview",
                           headers = { Authorization = "Bearer " .. support.read(dir .. "/token"):gsub("%s+$", "") } }
    c:close()
    assert.are.equal(200, res.status)
    os.execute("kill " .. pid)
    assert.is_true(wait_gone(pid))
    assert.matches("GET /files 200", support.read(dir .. "/pool.log") or "")
    assert.is_false(support.exists(sock))
    os.execute("rm -rf " .. support.quote(dir))
  end)

  it("starts again cleanly after being killed with SIGKILL", function()
    local pool = support.start{ socket = true }
    local again
    finally(function() pool:stop(); if again then again:stop() end end)
    local _, p = pool:execute("open('/mnt/data/x.txt','w').write('x'); 1", { identifier = "cli-kill" })
    assert.are.equal(1, p.result)
    local state = pool.line:match("state dir ([^,]+),")
    pool.client:close(); pool.client = nil
    os.execute("kill -KILL " .. pool.pid)
    assert.is_true(wait_gone(pool.pid))
    assert.is_true(support.exists(pool.socket))          -- left behind: the next start copes
    -- sandboxes die with their parent, a moment after it
    assert.is_truthy(util.wait(function() return #processes_mentioning(state) == 0 end, 10),
                     "a sandbox outlived the killed pool")

    again = support.start{ socket = true, dir = pool.dir, args = {} }
    local _, q = again:execute("6 * 7", { identifier = "cli-kill" })
    assert.are.equal(42, q.result)
    assert.is_false(support.exists(state), "the killed pool's directory was not cleaned")
    again:stop(); again:cleanup(); pool:cleanup()
  end)
end)
