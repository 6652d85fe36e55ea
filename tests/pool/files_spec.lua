-- Session files against hostile sessions: symlinks out of /mnt/data, FIFOs,
-- odd permissions; replacement and conflicts; privacy between sessions.
local support = require "support.pool"
local util = require "support.util"
local V2 = "2025-10-02-preview"

-- The temp file of an upload under way in the pool's state directory: the
-- pool has taken the upload and is writing it.
local function upload_under_way(pool)
  return support.sh("find " .. support.quote(pool.state_dir) .. " -name '.sesh-upload-*'") ~= ""
end

describe("sesh-pool files", function()
  local pool
  setup(function() pool = support.start{} end)
  teardown(function() pool:stop(); pool:cleanup() end)

  local function run(id, code)
    local _, p = pool:execute(code, { identifier = id })
    assert.are.equal("Success", p.status, p.stderr)
    return p.result
  end

  it("refuses to follow a symlink made in the session to a file outside", function()
    run("files-link", "import os; os.symlink('/etc/passwd', '/mnt/data/pw'); os.symlink('/etc', '/mnt/data/etc')")
    local res = pool:request{ path = "files/content/pw", identifier = "files-link" }
    assert.are.equal(404, res.status)
    assert.is_nil(res.body:find("root:", 1, true))
    assert.matches("outside /mnt/data", res.json.error.message)
    res = pool:request{ path = "files/content/etc%2Fpasswd", identifier = "files-link" }
    assert.are.equal(404, res.status)
    res = pool:request{ path = "files/pw", identifier = "files-link", api_version = V2 }
    assert.are.equal(404, res.status)
    local list = pool:request{ path = "files", identifier = "files-link" }
    assert.are.same({}, list.json.value)
    -- nor write through one
    local marker = "sesh-escape-" .. tostring(os.time())
    local up = pool:request{ method = "POST", path = "files",
                             query = { { "identifier", "files-link" }, { "api-version", V2 }, { "path", "etc" } },
                             multipart = { { name = "file", filename = marker, data = "x" } } }
    assert.are.equal(404, up.status)
    assert.is_false(support.exists("/etc/" .. marker))
  end)

  it("follows a symlink that stays inside /mnt/data", function()
    run("files-inlink", "open('/mnt/data/real.txt','w').write('inside'); import os; os.symlink('real.txt', '/mnt/data/alias.txt')")
    local res = pool:request{ path = "files/content/alias.txt", identifier = "files-inlink" }
    assert.are.equal(200, res.status)
    assert.are.equal("inside", res.body)
    run("files-inlink", "import os; os.makedirs('/mnt/data/d/e'); os.symlink('../../real.txt', '/mnt/data/d/e/up'); os.symlink('loop', '/mnt/data/loop')")
    local list = pool:request{ path = "files", query = { { "identifier", "files-inlink" }, { "api-version", V2 },
                                                         { "recursive", "true" } } }
    local found = {}
    for _, v in ipairs(list.json.value) do found[v.directory .. "/" .. v.name] = v.sizeInBytes end
    assert.are.equal(6, found["d/e/up"])              -- up and back down: still inside
    assert.is_nil(found["/loop"])
    res = pool:request{ path = "files/content/loop", identifier = "files-inlink" }
    assert.are.equal(404, res.status)
  end)

  it("does not hang on a FIFO planted in /mnt/data", function()
    run("files-fifo", "import os; os.mkfifo('/mnt/data/pipe')")
    local res = pool:request{ path = "files/content/pipe", identifier = "files-fifo", timeout = 10 }
    assert.are.equal(404, res.status)
    assert.matches("not a regular file", res.json.error.message)
  end)

  it("replaces a file on a second upload, and refuses to upload over a directory", function()
    local function up(name, data)
      return pool:request{ method = "POST", path = "files/upload", identifier = "files-replace",
                           multipart = { { name = "file", filename = name, data = data } } }
    end
    assert.are.equal(200, up("r.txt", "first version").status)
    assert.are.equal(200, up("r.txt", "second").status)
    local res = pool:request{ path = "files/content/r.txt", identifier = "files-replace" }
    assert.are.equal("second", res.body)
    assert.are.equal("second", run("files-replace", "open('/mnt/data/r.txt').read()"))
    run("files-replace", "import os; os.mkdir('/mnt/data/d'); open('/mnt/data/d/inner','w').write('1')")
    local conflict = up("d", "x")
    assert.are.equal(409, conflict.status)
    local list = pool:request{ path = "files", identifier = "files-replace" }
    local names = {}
    for _, v in ipairs(list.json.value) do names[#names + 1] = v.properties.filename end
    assert.are.same({ "r.txt" }, names)             -- no temporary file shows, no directory
  end)

  it("lets the code change what was uploaded (the file belongs to the session)", function()
    pool:request{ method = "POST", path = "files/upload", identifier = "files-owner",
                  multipart = { { name = "file", filename = "sub/owned.txt", data = "abc" } } }
    assert.are.equal("abcdef", run("files-owner", [[
with open('/mnt/data/sub/owned.txt', 'a') as f: f.write('def')
open('/mnt/data/sub/owned.txt').read()]]))
    assert.are.equal("ok", run("files-owner", "import os; os.remove('/mnt/data/sub/owned.txt'); os.rmdir('/mnt/data/sub'); 'ok'"))
  end)

  it("gives an upload to the sandbox that runs when it ends, not the one that ran when it began", function()
    -- the session's Python is replaced while a slow upload is on its way (a root
    -- pool runs each sandbox as a uid of its own): the file must be the new one's
    local host, port = pool.endpoint:match("http://([^:]+):(%d+)")
    local go, out = pool.dir .. "/slow.go", pool.dir .. "/slow.out"
    local body = '--sesh-boundary\r\nContent-Disposition: form-data; name="file"; filename="slow.txt"\r\n' ..
                 'Content-Type: text/plain\r\n\r\n' .. ("x"):rep(300000) .. '\r\n--sesh-boundary--\r\n'
    local head = ("POST /files/upload?api-version=2024-02-02-preview&identifier=files-handover HTTP/1.1\r\n" ..
      "Host: x\r\nAuthorization: Bearer %s\r\nContent-Type: multipart/form-data; boundary=sesh-boundary\r\n" ..
      "Content-Length: %d\r\nConnection: close\r\n\r\n"):format(pool.token, #body)
    local request = util.write(pool.dir .. "/slow.http", head .. body)
    run("files-handover", "'first sandbox'")
    os.execute(("%s tests/support/raw_http.py %s %s %s --pause-at %d --until %s > %s 2>&1 &"):format(
      os.getenv("PYTHON") or "/usr/bin/python3", host, port, support.quote(request), #head + 200000,
      support.quote(go), support.quote(out)))
    assert.is_true(util.wait(function() return upload_under_way(pool) end), "the upload did not begin")
    pool:execute("import os; os._exit(1)", { identifier = "files-handover" })
    run("files-handover", "'second sandbox'")
    util.write(go, "")
    local answer = util.wait(function()
      local a = support.read(out) or ""
      return a:find("}", 1, true) and a
    end) or support.read(out) or ""
    assert.matches("^HTTP/1%.1 200", answer)
    -- inside, a file of another host uid shows as the overflow uid, not as ours
    assert.are.equal("True 300001", run("files-handover", [[
import os
st = os.stat('/mnt/data/slow.txt')
with open('/mnt/data/slow.txt', 'a') as f: f.write('!')
'%s %d' % (st.st_uid == os.getuid(), os.path.getsize('/mnt/data/slow.txt'))]]))
  end)

  it("round-trips names with spaces and non-ASCII letters", function()
    local name = "donn\195\169es 2024 (v2).csv"
    local up = pool:request{ method = "POST", path = "files/upload", identifier = "files-names",
                             multipart = { { name = "file", filename = name, data = "x,y\n" } } }
    assert.are.equal(200, up.status)
    assert.are.equal(name, up.json.value[1].properties.filename)
    local down = pool:request{ path = "files/content/" .. support.encode(name), identifier = "files-names" }
    assert.are.equal(200, down.status)
    assert.are.equal("x,y\n", down.body)
    assert.are.equal(true, run("files-names", "import os; os.path.exists('/mnt/data/" .. name .. "')"))
  end)

  it("keeps each session's files to itself", function()
    pool:request{ method = "POST", path = "files/upload", identifier = "files-alice",
                  multipart = { { name = "file", filename = "private.txt", data = "alice's" } } }
    local res = pool:request{ path = "files/content/private.txt", identifier = "files-bob" }
    assert.are.equal(404, res.status)
    assert.are.equal(false, run("files-bob", "import os; os.path.exists('/mnt/data/private.txt')"))
  end)

  it("removes a deleted session's files, even ones the code locked away", function()
    run("files-locked", "import os; os.makedirs('/mnt/data/a/b'); open('/mnt/data/a/b/f','w').write('x'); os.chmod('/mnt/data/a/b', 0); os.chmod('/mnt/data/a', 0)")
    local state = pool.line:match("state dir ([^,]+),")
    local before = support.sh("ls " .. support.quote(state))
    local del = pool:request{ method = "DELETE", path = "session", identifier = "files-locked", api_version = V2 }
    assert.are.equal(204, del.status)
    local after = support.sh("ls " .. support.quote(state))
    local n_before, n_after = select(2, before:gsub("s%-%x+", "")), select(2, after:gsub("s%-%x+", ""))
    assert.are.equal(n_before - 1, n_after)
  end)
  it("streams an upload to disk: the pool's memory does not grow with the file", function()
    local function hwm()
      return tonumber(support.read("/proc/" .. pool.pid .. "/status"):match("VmHWM:%s*(%d+)"))
    end
    local path = pool.dir .. "/big.bin"
    os.execute("head -c 50000000 /dev/zero > " .. support.quote(path))
    local before = hwm()
    local res = pool:request{ method = "POST", path = "files/upload", identifier = "files-big",
                              multipart = { { name = "file", filename = "big.bin", file = path } } }
    assert.are.equal(200, res.status)
    assert.are.equal(50000000, res.json.value[1].properties.size)
    local grown = hwm() - before
    assert.is_true(grown < 20000, ("the pool grew by %d kB for a 50 MB upload"):format(grown))
    local out = pool.dir .. "/big.down"
    local down = pool:request{ path = "files/content/big.bin", identifier = "files-big", output_file = out }
    assert.are.equal(200, down.status)
    assert.are.equal("50000000", down.headers["content-length"])
    assert.is_true(os.execute("cmp -s " .. support.quote(path) .. " " .. support.quote(out)))
    os.remove(path); os.remove(out)
  end)

  it("shows an upload only once it is complete", function()
    local host, port = pool.endpoint:match("http://([^:]+):(%d+)")
    local boundary = "sesh-boundary-42"
    local first = "--" .. boundary .. "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.txt\"\r\n" ..
                  "Content-Type: application/octet-stream\r\n\r\n" .. string.rep("a", 5000)
    local second = string.rep("b", 5000) .. "\r\n--" .. boundary .. "--\r\n"
    local head = "POST /files/upload?identifier=files-slow&api-version=2024-02-02-preview HTTP/1.1\r\n" ..
                 "Host: x\r\nAuthorization: Bearer " .. pool.token .. "\r\nConnection: close\r\n" ..
                 "Content-Type: multipart/form-data; boundary=" .. boundary .. "\r\n" ..
                 "Content-Length: " .. (#first + #second) .. "\r\n\r\n"
    local request = util.write(pool.dir .. "/slow-upload.http", head .. first .. second)
    local go, out = pool.dir .. "/slow-upload.go", pool.dir .. "/slow-upload.out"
    run("files-slow", "1")               -- the session and its interpreter exist first
    os.execute(("%s tests/support/raw_http.py %s %s %s --pause-at %d --until %s > %s 2>&1 &"):format(
      os.getenv("PYTHON") or "/usr/bin/python3", host, port, support.quote(request), #head + #first,
      support.quote(go), support.quote(out)))
    assert.is_true(util.wait(function() return upload_under_way(pool) end), "the upload did not begin")
    local mid = pool:request{ path = "files/content/slow.txt", identifier = "files-slow" }
    assert.are.equal(404, mid.status)
    assert.are.equal(false, run("files-slow", "import os; os.path.exists('/mnt/data/slow.txt')"))
    util.write(go, "")
    local answer = util.wait(function()
      local a = support.read(out)
      return a and a:find("}", 1, true) and a
    end)
    assert.matches("^HTTP/1%.1 200", answer or support.read(out) or "")
    local done = pool:request{ path = "files/content/slow.txt", identifier = "files-slow" }
    assert.are.equal(string.rep("a", 5000) .. string.rep("b", 5000), done.body)
  end)
end)
