-- What a session can see of the host: nothing of the pool's layout (its state
-- folder, its pid, the directory that holds the session's files) in
-- /proc/self/mountinfo, /proc/self/mounts or the command lines inside; and
-- its files, shown through a mount of their own, stay the same files for the
-- pool and for the code. For a root pool and, when setpriv is there, for a
-- pool that is not root.
local support = require "support.pool"
local V2 = "2025-10-02-preview"

local SHOW = [[
import os
seen = [open('/proc/self/mountinfo').read(), open('/proc/self/mounts').read()]
for p in os.listdir('/proc'):
    if p.isdigit():
        try: seen.append(open('/proc/%s/cmdline' % p).read().replace('\0', ' '))
        except OSError: pass
print('\n'.join(seen))
]]

-- The host's strings a session must not see: every path of the pool, and
-- the names of its session directories.
local function host_strings(pool)
  local state = pool.line:match("state dir ([^,]+),")
  local words = { pool.dir, state, "pool-" .. pool.pid }
  for name in support.sh("ls " .. support.quote(state)):gmatch("[%w%-]+") do
    if name:match("^[sw]%-%x+$") then words[#words + 1] = name end
  end
  return words
end

local function run(pool, id, code)
  local _, p = pool:execute(code, { identifier = id })
  assert.are.equal("Success", p.status, p.stderr)
  return p
end

local function check_pool(pool, id)
  local seen = run(pool, id, SHOW).stdout
  assert.matches(" /mnt/data ", seen)                   -- it did read the mount table
  for _, word in ipairs(host_strings(pool)) do
    assert.is_nil(seen:find(word, 1, true), ("the session sees %q:\n%s"):format(word, seen))
  end
  -- the same files for the pool and the code, as they change on either side
  local function up(data)
    return pool:request{ method = "POST", path = "files/upload", identifier = id,
                         multipart = { { name = "file", filename = "f.txt", data = data } } }
  end
  assert.are.equal(200, up("first").status)
  assert.are.equal("first", run(pool, id, "print(open('f.txt').read(), end='')").stdout)
  assert.are.equal(200, up("second, longer").status)    -- replaced while the code knows it
  assert.are.equal("second, longer", run(pool, id, "print(open('f.txt').read(), end='')").stdout)
  run(pool, id, "open('g.txt', 'w').write('from the code')")
  assert.are.equal("from the code", pool:request{ path = "files/content/g.txt", identifier = id }.body)
  local del = pool:request{ method = "DELETE", path = "files/f.txt", identifier = id, api_version = V2 }
  assert.are.equal(204, del.status)
  assert.are.equal("False", run(pool, id, "import os; print(os.path.exists('f.txt'), end='')").stdout)
end

describe("sesh-pool, what a session sees of the host", function()
  it("shows a root pool's sessions no path of the host, and keeps their files one", function()
    local pool = support.start{}
    finally(function() pool:stop(); pool:cleanup() end)
    check_pool(pool, "mounts-root")
    assert.matches("through overlay mounts", pool:log())
  end)

  local has_setpriv = os.execute("command -v setpriv >/dev/null 2>&1") == true
  local root = support.sh("id -u"):match("%d+") == "0"
  local it_user = (has_setpriv and root) and it or pending
  it_user("shows the sessions of a pool that is not root no path of the host either", function()
    local pool = support.start{ user = 65534 }
    finally(function() pool:stop(); pool:cleanup() end)
    check_pool(pool, "mounts-user")
    assert.matches("through overlay mounts, in a user namespace of the pool's own", pool:log())
  end)
end)
