-- The state folder: what a killed pool leaves goes at the next start, in the
-- default folder ($TMPDIR/sesh-pool-<uid>, what the module's local pool
-- uses) as with --state-dir; a live pool's folder is never touched, whatever
-- its pid (reused by another pool) or its process name says.
local support = require "support.pool"
local util = require "support.util"
local root = support.sh("id -u"):match("^0") ~= nil

local function escape(s) return (s:gsub("%p", "%%%0")) end

-- A pool started by hand: args, TMPDIR, optional user and binary. Pools a
-- failed test leaves running are stopped after it.
local running = {}
local function start(dir, args, tmpdir, user, binary)
  local prefix = { "env", "TMPDIR=" .. tmpdir }
  if user then
    prefix = { "setpriv", "--reuid=" .. user, "--regid=" .. user, "--clear-groups", "--",
               "env", "TMPDIR=" .. tmpdir }
  end
  local all = { "--listen", "127.0.0.1:0", "--ready-sessions", "0" }
  for _, a in ipairs(args or {}) do all[#all + 1] = a end
  local pid, out, err
  if binary then   -- support.spawn runs M.binary(): give it ours
    local orig = support.binary
    support.binary = function() return binary end
    pid, out, err = support.spawn(all, dir, prefix)
    support.binary = orig
  else
    pid, out, err = support.spawn(all, dir, prefix)
  end
  local line, why = support.wait_line(pid, out, err)
  running[#running + 1] = pid
  assert(line, "sesh-pool did not start: " .. tostring(why))
  local p = { pid = pid, err = err, line = line, state = line:match("state dir ([^,]+),"),
              token_file = line:match("token file ([^,]+),"), endpoint = line:match("listening on (http://[^ ]+)") }
  p.token = (util.read(p.token_file) or ""):gsub("%s+$", "")
  return p
end

local function kill(p, signal)
  os.execute(("kill -%s %d"):format(signal or "KILL", p.pid))
  for _ = 1, 200 do
    if not support.alive(p.pid) then return end
    support.sleep(0.05)
  end
  error("pool " .. p.pid .. " did not end")
end

local function exists(path) return os.execute("test -e " .. util.quote(path)) == true end

-- Upload a file through the pool's API (curl: no libcurl client to keep).
local scratch
local function put_file(p, id, name)
  local body = util.write(scratch, "kept")
  local out = support.sh(("curl -s -o /dev/null -w '%%{http_code}' -H %s -F %s %s"):format(
    util.quote("Authorization: Bearer " .. p.token), util.quote("file=@" .. body .. ";filename=" .. name),
    util.quote(p.endpoint .. "/files/upload?api-version=2024-02-02-preview&identifier=" .. id)))
  os.remove(body)
  return out
end
local function get_file(p, id, name)
  return support.sh(("curl -s -H %s %s"):format(util.quote("Authorization: Bearer " .. p.token),
    util.quote(p.endpoint .. "/files/content/" .. name .. "?api-version=2024-02-02-preview&identifier=" .. id)))
end

describe("sesh-pool state folders", function()
  local dir
  before_each(function()
    dir = support.tmpdir()
    os.execute("chmod 755 " .. util.quote(dir))
    scratch = dir .. "/upload.txt"
  end)
  after_each(function()
    for _, pid in ipairs(running) do
      if support.alive(pid) then os.execute("kill -KILL " .. pid) end
    end
    running = {}
    os.execute("rm -rf " .. util.quote(dir))
  end)

  for _, user in ipairs(root and { false, 65534 } or { false }) do
    it("removes, at the next start, what a killed pool left in the default folder" ..
       (user and " (a pool that is not root)" or ""), function()
      local tmp = dir .. "/tmp"
      os.execute("mkdir -m 700 " .. util.quote(tmp))
      if user then os.execute(("chown %d:%d %s"):format(user, user, util.quote(tmp))) end
      local uid = user or tonumber(support.sh("id -u"))
      local a = start(dir, {}, tmp, user)
      assert.matches("^" .. escape(tmp .. "/sesh-pool-" .. uid .. "/pool-" .. a.pid) .. "$", a.state)
      assert.are.equal("200", put_file(a, "left-behind", "data.txt"))
      kill(a)
      assert.is_true(exists(a.state))           -- SIGKILL: no chance to clean up
      local b = start(dir, {}, tmp, user)
      assert.is_false(exists(a.state))
      assert.matches("removed " .. escape(a.state) .. ", left by a pool that is gone", util.read(b.err))
      kill(b, "TERM")
      assert.is_false(exists(b.state))          -- a clean stop leaves nothing either
    end)
  end

  it("never touches a live pool's folder, and removes a dead one's whatever its pid now names", function()
    local state = dir .. "/state"
    local a = start(dir, { "--state-dir", state }, dir)
    assert.are.equal("200", put_file(a, "alive-session", "mine.txt"))
    -- A live pool under another process name (a renamed binary): its pid says
    -- nothing about its being a pool.
    local renamed = dir .. "/renamed-pool"
    os.execute(("cp %s %s"):format(util.quote(support.binary()), util.quote(renamed)))
    local c = start(dir, { "--state-dir", state }, dir, nil, renamed)
    assert.are.equal("200", put_file(c, "renamed-session", "theirs.txt"))
    -- What a dead pool left, under the pid of a live sesh-pool (pids are reused).
    local dead = state .. "/pool-" .. a.pid .. "-0"
    os.execute("mkdir -p " .. util.quote(dead .. "/s-0123/sub"))
    local reused = dir .. "/other-state/pool-" .. a.pid
    os.execute("mkdir -p -m 700 " .. util.quote(dir .. "/other-state") .. " && mkdir -p " .. util.quote(reused))
    local b = start(dir, { "--state-dir", state }, dir)
    local d = start(dir, { "--state-dir", dir .. "/other-state" }, dir)
    assert.is_false(exists(dead))
    assert.is_false(exists(reused))
    assert.is_true(exists(a.state))
    assert.is_true(exists(c.state))
    assert.are.equal("kept", get_file(a, "alive-session", "mine.txt"))
    assert.are.equal("kept", get_file(c, "renamed-session", "theirs.txt"))
    for _, p in ipairs{ a, b, c, d } do kill(p, "TERM") end
  end)

  it("passes over a default folder made by someone else, for a private one", function()
    if not root then return end
    local tmp = dir .. "/tmp"
    os.execute(("mkdir -m 755 %s && mkdir -m 700 %s/sesh-pool-0 && chown 65534 %s/sesh-pool-0"):format(
      util.quote(tmp), util.quote(tmp), util.quote(tmp)))
    local a = start(dir, {}, tmp)
    assert.matches("^" .. escape(tmp .. "/sesh-pool.") .. "%w+$", a.state)
    assert.matches("the default state directory is not usable %(.*must belong to this user", util.read(a.err))
    kill(a, "TERM")
    assert.is_false(exists(a.state))
  end)
end)
