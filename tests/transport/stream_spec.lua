-- Streaming: big bodies go between disk and socket, never whole in memory.
local http = require "sessions.http"
local cjson = require "cjson"
local support = require "support.stub_http"

local SESH = (os.getenv("SESH_BUILD") or "build") .. "/bin/sesh"
local MB = 1024 * 1024
local PATTERN = {}
for i = 0, 255 do PATTERN[#PATTERN + 1] = string.char(i) end
PATTERN = table.concat(PATTERN):rep(4096)   -- 1 MiB, the stub's /big pattern

local function write_file(path, mb)
  local f = assert(io.open(path, "wb"))
  for i = 1, mb do f:write(PATTERN:sub(i % 256 + 1) .. PATTERN:sub(1, i % 256)) end
  f:close()
end

local function same_files(a, b)
  local fa, fb = assert(io.open(a, "rb")), assert(io.open(b, "rb"))
  local same = true
  repeat
    local x, y = fa:read(MB), fb:read(MB)
    if x ~= y then same = false break end
  until x == nil
  fa:close(); fb:close()
  return same
end

local function size(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local n = f:seek("end")
  f:close()
  return n
end

-- Peak RSS (kB) of a fresh host doing one transfer.
local function probe(mode, url, path)
  local cmd = string.format("%s tests/transport/rss_probe.lua %s '%s' '%s' 2>&1",
                            SESH, mode, url, path)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  local kb = out:match("VmHWM (%d+)")
  assert(kb, "probe failed: " .. out)
  return tonumber(kb)
end

describe("sessions.http streaming", function()
  local stub, c
  setup(function()
    stub = support.start()
    c = http.client{ timeout = 120 }
  end)
  teardown(function()
    c:close()
    stub:stop()
  end)

  it("streams a download to output_file and leaves no temp file", function()
    local path = support.tmpname("down.bin")
    local res = c:request{ url = stub.url .. "/big?mb=8", output_file = path, progress = false }
    assert.are.equal(200, res.status)
    assert.is_nil(res.body)
    assert.are.equal(8 * MB, size(path))
    local f = assert(io.open(path, "rb"))
    assert.is_true(f:read(MB) == PATTERN)
    f:close()
    local dir, base = path:match("^(.*)/([^/]*)$")
    local ls = io.popen("ls -a '" .. dir .. "'"):read("a")
    assert.is_nil(ls:find("." .. base .. ".sesh-", 1, true), "temp file left")
    os.remove(path)
  end)

  -- System calls of this process (/proc/self/io): read and write calls on files count,
  -- socket sends and receives do not.
  local function syscalls()
    local f = assert(io.open("/proc/self/io"))
    local text = f:read("a")
    f:close()
    return tonumber(text:match("syscr: (%d+)")), tonumber(text:match("syscw: (%d+)"))
  end

  it("writes a download and reads an upload in big pieces, not 16 KiB ones", function()
    local path = support.tmpname("pieces.bin")
    local _, w0 = syscalls()
    local res = c:request{ url = stub.url .. "/big?mb=64", output_file = path, progress = false }
    local r1, w1 = syscalls()
    assert.are.equal(200, res.status)
    assert.are.equal(64 * MB, size(path))
    -- 64 MiB in 16 KiB writes would be 4096 calls; half-megabyte writes make about 130
    assert.is_true(w1 - w0 < 512, "write calls for 64 MiB: " .. (w1 - w0))
    res = c:request{ method = "POST", url = stub.url .. "/save?path=" .. path .. ".copy",
                     body_file = path, progress = false }
    local r2 = syscalls()
    assert.are.equal("67108864 bytes", res.body)
    assert.is_true(r2 - r1 < 512, "read calls for a 64 MiB body_file: " .. (r2 - r1))
    res = c:request{ url = stub.url .. "/multipart", max_body = 1024,
                     multipart = { { name = "file", file = path } }, progress = false }
    local r3 = syscalls()
    assert.is_true(r3 - r2 < 512, "read calls for a 64 MiB multipart file: " .. (r3 - r2))
    assert.is_true(same_files(path, path .. ".copy"))
    os.remove(path); os.remove(path .. ".copy")
  end)

  it("keeps a non-2xx answer in res.body and does not touch output_file", function()
    local path = support.tmpname("keep.txt")
    local f = assert(io.open(path, "w")); f:write("old"); f:close()
    local res = c:request{ url = stub.url .. "/status/404", output_file = path }
    assert.are.equal(404, res.status)
    assert.are.equal("status 404", res.body)
    f = assert(io.open(path)); assert.are.equal("old", f:read("a")); f:close()
    os.remove(path)
  end)

  it("removes the partial download on failure and keeps the old file", function()
    local path = support.tmpname("trunc.bin")
    local f = assert(io.open(path, "w")); f:write("old"); f:close()
    local ok, err = pcall(c.request, c, { url = stub.url .. "/truncated", output_file = path })
    assert.is_false(ok)
    assert.are.equal("transport", err.kind)
    f = assert(io.open(path)); assert.are.equal("old", f:read("a")); f:close()
    local dir, base = path:match("^(.*)/([^/]*)$")
    local ls = io.popen("ls -a '" .. dir .. "'"):read("a")
    assert.is_nil(ls:find("." .. base .. ".sesh-", 1, true), "temp file left")
    os.remove(path)
  end)

  it("fails clearly when output_file's directory does not exist", function()
    local ok, err = pcall(c.request, c, { url = stub.url .. "/hello",
                                          output_file = "/nonexistent/dir/x" })
    assert.is_false(ok)
    assert.are.equal("file", err.kind)
    assert.matches("/nonexistent/dir/x", err.message, 1, true)
  end)

  it("uploads body_file with the exact bytes", function()
    local src, dst = support.tmpname("up.bin"), support.tmpname("up.saved")
    write_file(src, 5)
    local res = c:request{ method = "POST", url = stub.url .. "/save?path=" .. dst, body_file = src }
    assert.are.equal(200, res.status)
    assert.are.equal(5 * MB .. " bytes", res.body)
    assert.is_true(same_files(src, dst))
    os.remove(src); os.remove(dst)
  end)

  it("re-sends the whole body_file on a retry", function()
    local src = support.tmpname("retry.bin")
    write_file(src, 2)
    local res = c:request{ method = "PUT", url = stub.url .. "/flaky?key=s1&n=1&code=503",
                           body_file = src, retry = { max = 2, base = 0.01, statuses = { 503 } } }
    assert.are.equal(200, res.status)
    assert.are.equal(2, res.attempts)
    assert.are.equal(tostring(2 * MB), res.headers["x-body-bytes"])
    os.remove(src)
  end)

  it("re-sends multipart file parts on a retry", function()
    local src = support.tmpname("mretry.bin")
    write_file(src, 1)
    local res = c:request{ url = stub.url .. "/flaky?key=s2&n=1&code=503",
                           multipart = { { name = "file", file = src } },
                           retry = { max = 2, base = 0.01, statuses = { 503 } } }
    assert.are.equal(2, res.attempts)
    assert.is_true(tonumber(res.headers["x-body-bytes"]) > MB)
    os.remove(src)
  end)

  it("writes only the final answer of a retried download", function()
    local path = support.tmpname("rdown.txt")
    local res = c:request{ url = stub.url .. "/flaky?key=s3&n=2&code=503", output_file = path,
                           retry = { max = 3, base = 0.01, statuses = { 503 } } }
    assert.are.equal(3, res.attempts)
    local f = assert(io.open(path)); assert.are.equal("ok after 3", f:read("a")); f:close()
    os.remove(path)
  end)

  it("draws a progress bar on a terminal only", function()
    local out = support.tmpname("prog.bin")
    local probe_cmd = string.format("%s tests/transport/rss_probe.lua progress '%s' '%s'",
                                    SESH, stub.url .. "/big?mb=64", out)
    local piped = io.popen(probe_cmd .. " 2>&1"):read("a")
    assert.is_nil(piped:find("MiB/s", 1, true), piped)
    local src, saved = support.tmpname("prog.up"), support.tmpname("prog.saved")
    write_file(src, 64)
    local up_cmd = string.format("%s tests/transport/rss_probe.lua progress-up '%s' '%s'",
                                 SESH, stub.url .. "/save?path=" .. saved, src)
    if os.execute("command -v script >/dev/null") then
      local tty = io.popen("script -qec \"" .. probe_cmd .. "\" /dev/null"):read("a")
      assert.matches("download %[[#-]+%] [%d.]+ / 64.0 MiB [%d ]+%% [%d.]+ MiB/s", tty)
      tty = io.popen("script -qec \"" .. up_cmd .. "\" /dev/null"):read("a")
      assert.matches("upload   %[[#-]+%] [%d.]+ / 64.0 MiB [%d ]+%% [%d.]+ MiB/s", tty)
      local par_cmd = string.format("%s tests/transport/rss_probe.lua progress-par '%s' '%s'",
                                    SESH, stub.url .. "/big?mb=32&s=1", out)
      tty = io.popen("script -qec \"" .. par_cmd .. "\" /dev/null"):read("a")
      assert.matches("3 transfers %[[#-]+%] [%d.]+ / 96.0 MiB", tty)
    end
    os.remove(out); os.remove(src); os.remove(saved)
  end)

  it("streams a multipart file part", function()
    local src = support.tmpname("part.bin")
    write_file(src, 3)
    local res = c:request{ url = stub.url .. "/multipart",
                           multipart = { { name = "file", file = src, filename = "p.bin" } } }
    local parts = cjson.decode(res.body)
    assert.are.equal(3 * MB, parts[1].size)
    assert.are.equal("p.bin", parts[1].filename)
    os.remove(src)
  end)

  describe("peak memory of the host", function()
    local big = support.tmpname("256.bin")
    setup(function() write_file(big, 256) end)
    teardown(function() os.remove(big) end)

    it("stays low while downloading 256 MiB", function()
      local out = support.tmpname("256.down")
      local kb = probe("download", stub.url .. "/big?mb=256", out)
      assert.are.equal(256 * MB, size(out))
      os.remove(out)
      assert.is_true(kb < 64 * 1024, "VmHWM " .. kb .. " kB")
    end)

    it("stays low while uploading 256 MiB from a file", function()
      local saved = support.tmpname("256.saved")
      local kb = probe("upload", stub.url .. "/save?path=" .. saved, big)
      assert.is_true(same_files(big, saved))
      os.remove(saved)
      assert.is_true(kb < 64 * 1024, "VmHWM " .. kb .. " kB")
    end)

    it("stays low while uploading 256 MiB as a multipart part", function()
      -- /save stores the raw multipart body: the file plus the part framing
      local saved = support.tmpname("256.mp")
      local kb = probe("multipart", stub.url .. "/save?path=" .. saved, big)
      assert.is_true(size(saved) > 256 * MB)
      os.remove(saved)
      assert.is_true(kb < 64 * 1024, "VmHWM " .. kb .. " kB")
    end)
  end)
end)
