-- Disk limits meet uploads: --max-disk (a session's /mnt/data, uploads in
-- flight and what its code holds counted together: 413) and --min-free-disk
-- (the free space the pool keeps for the host: 507, and code that writes is
-- stopped). A refused upload leaves nothing behind.
local support = require "support.pool"
local util = require "support.util"
local V2 = "2025-10-02-preview"
local MiB = 1 << 20

-- A file of `size` bytes for uploads, written once per spec directory.
local function blob(dir, size)
  local path = ("%s/blob-%d"):format(dir, size)
  if not support.exists(path) then
    os.execute(("head -c %d /dev/zero | tr '\\0' b > %s"):format(size, support.quote(path)))
  end
  return path
end

local function upload(pool, id, name, size, dir)
  return pool:request{ method = "POST", path = "files/upload", identifier = id,
                       multipart = { { name = "file", filename = name, file = blob(dir or pool.dir, size) } } }
end

local function names(pool, id)
  local list = pool:request{ path = "files", identifier = id }
  local found = {}
  for _, v in ipairs(list.json.value) do found[#found + 1] = v.properties.filename end
  table.sort(found)
  return found
end

local function state_dir(pool) return pool.line:match("state dir ([^,]+),") end

-- The uploads' temporary files the pool left in its state directory, larger
-- than `over` bytes.
local function temporaries(pool, over)
  return support.sh(("find %s -name '.sesh-upload-*' %s"):format(
    support.quote(state_dir(pool)), over and ("-size +%dc"):format(over) or ""))
end

local function wait_for(what, fn)
  for _ = 1, 600 do
    local v = fn()
    if v then return v end
    support.sleep(0.05)
  end
  error("waited in vain for " .. what)
end

local function assert_refused(res, status, code, words)
  assert.are.equal(status, res.status, res.body)
  assert.are.equal(code, res.json.error.code)
  assert.are.equal(code, res.headers["x-ms-error-code"])
  assert.matches(words, res.json.error.message)
end

-- An upload sent byte by byte by raw_http.py, for what curl will not do:
-- pause it half-way (o.pause_at: bytes of the file part sent before the
-- pause), or send it chunked, with no Content-Length (o.chunked). The
-- request is written in o.dir (default: the pool's). Returns a handle:
-- go() sends the rest, answer() waits for the answer.
local function raw_upload(pool, id, name, size, o)
  o = o or {}
  local host, port = pool.endpoint:match("http://([^:]+):(%d+)")
  local part = ('--sesh-boundary\r\nContent-Disposition: form-data; name="file"; filename="%s"\r\n' ..
                'Content-Type: application/octet-stream\r\n\r\n'):format(name)
  local body = part .. ("r"):rep(size) .. "\r\n--sesh-boundary--\r\n"
  local length = ("Content-Length: %d\r\n"):format(#body)
  if o.chunked then
    body = ("%x\r\n"):format(#body) .. body .. "\r\n0\r\n\r\n"
    length = "Transfer-Encoding: chunked\r\n"
  end
  local head = ("POST /files/upload?api-version=2024-02-02-preview&identifier=%s HTTP/1.1\r\n" ..
    "Host: x\r\nAuthorization: Bearer %s\r\nContent-Type: multipart/form-data; boundary=sesh-boundary\r\n" ..
    "%sConnection: close\r\n\r\n"):format(id, pool.token, length)
  local base = ("%s/raw-%s"):format(o.dir or pool.dir, name)
  local request = util.write(base .. ".http", head .. body)
  local pause = o.pause_at and ("--pause-at %d --until %s"):format(#head + #part + o.pause_at,
                                                                   support.quote(base .. ".go")) or ""
  os.execute(("%s tests/support/raw_http.py %s %s %s %s > %s 2>&1 &"):format(
    os.getenv("PYTHON") or "/usr/bin/python3", host, port, support.quote(request), pause,
    support.quote(base .. ".out")))
  return {
    go = function() util.write(base .. ".go", "") end,
    answer = function()
      local text = wait_for("the answer to " .. name, function()
        local s = support.read(base .. ".out") or ""
        return s:match("\r\n\r\n.*}%s*$") and s
      end)
      return tonumber(text:match("^HTTP/1%.1 (%d+)")), text
    end,
  }
end

describe("sesh-pool, --max-disk and uploads", function()
  local pool
  setup(function() pool = support.start{ args = { "--max-disk", tostring(20 * MiB) } } end)
  teardown(function() pool:stop(); pool:cleanup() end)

  it("refuses the uploads past the limit with 413, leaving nothing of them", function()
    local statuses = {}
    for i = 1, 8 do
      local res = upload(pool, "disk-eight", ("f%d.bin"):format(i), 7 * MiB)
      statuses[i] = res.status
      if i > 2 then
        assert_refused(res, 413, "SessionDiskLimitExceeded", "disk limit of 20971520 bytes %(%-%-max%-disk%)")
      end
    end
    assert.are.same({ 200, 200, 413, 413, 413, 413, 413, 413 }, statuses)
    assert.are.same({ "f1.bin", "f2.bin" }, names(pool, "disk-eight"))
    assert.are.equal("", temporaries(pool))
    local _, p = pool:execute("import os; print(sorted(os.listdir('.')), sum(os.path.getsize(n) for n in os.listdir('.')))",
                              { identifier = "disk-eight" })
    assert.are.equal("['f1.bin', 'f2.bin'] " .. 14 * MiB .. "\n", p.stdout)
  end)

  it("counts the uploads of a session in flight together", function()
    -- a: 12 MiB, held half-way with 8 MiB sent; b (14 MiB) would fit alone
    local a = raw_upload(pool, "disk-flight", "a.bin", 12 * MiB, { pause_at = 8 * MiB })
    wait_for("a's first 7 MiB on disk", function() return temporaries(pool, 7 * MiB) ~= "" end)
    local b = upload(pool, "disk-flight", "b.bin", 14 * MiB)
    assert_refused(b, 413, "SessionDiskLimitExceeded", "uploads in progress")
    a.go()
    assert.are.equal(200, (a.answer()))
    -- c, sent chunked (no size announced), is stopped as it writes past the limit
    local c = raw_upload(pool, "disk-flight", "c.bin", 10 * MiB, { chunked = true })
    local status, answer = c.answer()
    assert.are.equal(413, status, answer)
    assert.matches('"SessionDiskLimitExceeded"', answer)
    assert.matches("was stopped after", answer)
    assert.are.same({ "a.bin" }, names(pool, "disk-flight"))
    assert.are.equal("", temporaries(pool))
  end)

  it("counts what the session's code holds, as the code and the pool change it", function()
    local id = "disk-code"
    local function run(code) return pool:execute(code, { identifier = id }) end
    run("open('big.bin', 'wb').write(b'x' * (15 << 20))")
    assert_refused(upload(pool, id, "u1.bin", 7 * MiB), 413, "SessionDiskLimitExceeded",
                   "holds 157%d%d%d%d%d bytes")
    local del = pool:request{ method = "DELETE", path = "files/big.bin", identifier = id, api_version = V2 }
    assert.are.equal(204, del.status)
    assert.are.equal(200, upload(pool, id, "u1.bin", 7 * MiB).status)
    run("open('more.bin', 'wb').write(b'x' * (10 << 20))")
    assert_refused(upload(pool, id, "u2.bin", 7 * MiB), 413, "SessionDiskLimitExceeded", "%-%-max%-disk")
    run("import os; os.remove('more.bin')")
    assert.are.equal(200, upload(pool, id, "u2.bin", 7 * MiB).status)
    assert.are.same({ "u1.bin", "u2.bin" }, names(pool, id))
  end)
end)

describe("sesh-pool, --min-free-disk", function()
  local root = support.sh("id -u"):match("%d+") == "0"
  local it_root = root and it or pending
  it_root("refuses uploads and stops code that writes when the disk runs short", function()
    -- a 64 MiB file system of the spec's own holds the state directory
    local dir, blobs = support.tmpdir(), support.tmpdir()
    assert.is_true(os.execute("mount -t tmpfs -o size=64m,mode=0700 sesh-spec " .. support.quote(dir)))
    local pool
    finally(function()
      if pool then pool:stop() end
      os.execute("umount " .. support.quote(dir) .. "; rm -rf " .. support.quote(dir) .. " " .. support.quote(blobs))
    end)
    pool = support.start{ dir = dir, args = { "--min-free-disk", tostring(40 * MiB) } }
    assert.matches("min free disk 41943040 bytes", pool.line)
    local id = "disk-floor"
    assert.are.equal(200, upload(pool, id, "first.bin", 20 * MiB, blobs).status)   -- 44 MiB left
    assert_refused(upload(pool, id, "second.bin", 10 * MiB, blobs), 507, "InsufficientStorage",
                   "keeps at least 41943040 free for the host %(%-%-min%-free%-disk%)")
    local status, answer = raw_upload(pool, id, "third.bin", 10 * MiB, { chunked = true, dir = blobs }).answer()
    assert.are.equal(507, status, answer)
    assert.matches("was stopped", answer)
    assert.are.same({ "first.bin" }, names(pool, id))
    assert.are.equal("", temporaries(pool))
    local _, p = pool:execute([[
import time
with open('grow.bin', 'wb') as f:
    for _ in range(100):
        f.write(b'g' * (1 << 20)); f.flush(); time.sleep(0.02)
]], { identifier = id })
    assert.are.equal("Failure", p.status)
    assert.matches("below the floor of 41943040 bytes it keeps for the host", p.stderr)
    _, p = pool:execute("import os; os.remove('grow.bin'); 'removed'", { identifier = id })
    assert.are.equal("removed", p.result)
  end)
end)
