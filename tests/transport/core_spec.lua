-- sessions.core: base64, PNG header, UUID; the OS layer (clock, uid, stat,
-- mkdir, lock, spawn, wait) and its luv-like failures; the error value.
local core = require "sessions.core"
local util = require "support.util"

local function tmpdir()
  local p = io.popen("mktemp -d " .. util.quote((os.getenv("SESH_TEST_TMP") or "/tmp") .. "/core.XXXXXX"))
  local dir = p:read("l")
  p:close()
  return dir
end

describe("sessions.core", function()
  it("encodes and decodes base64 (RFC 4648 vectors)", function()
    local vectors = { [""] = "", f = "Zg==", fo = "Zm8=", foo = "Zm9v", foob = "Zm9vYg==",
                      fooba = "Zm9vYmE=", foobar = "Zm9vYmFy" }
    for plain, enc in pairs(vectors) do
      assert.are.equal(enc, core.b64encode(plain))
      assert.are.equal(plain, core.b64decode(enc))
    end
  end)

  it("round-trips every byte value", function()
    local all = {}
    for i = 0, 255 do all[#all + 1] = string.char(i) end
    all = table.concat(all):rep(3)
    for n = 0, 7 do
      local s = all:sub(1, #all - n)
      assert.are.equal(s, core.b64decode(core.b64encode(s)))
    end
  end)

  it("ignores whitespace, accepts missing padding and the URL-safe alphabet", function()
    assert.are.equal("foobar", core.b64decode("Zm9v\nYmFy\r\n"))
    assert.are.equal("fo", core.b64decode("Zm8"))
    assert.are.equal("\251\255", core.b64decode("-_8="))
  end)

  it("rejects bad base64 with a reason", function()
    local s, why = core.b64decode("Zm9v!")
    assert.is_nil(s)
    assert.matches("bad character at byte 5", why)
    s, why = core.b64decode("Z")
    assert.is_nil(s)
    assert.matches("truncated", why)
    s, why = core.b64decode("Zg==Zg==")
    assert.is_nil(s)
    assert.matches("after padding", why)
  end)

  it("reads a PNG's width and height", function()
    local png = "\137PNG\r\n\26\n" .. "\0\0\0\13IHDR" .. "\0\0\2\128" .. "\0\0\1\224" ..
                "\8\6\0\0\0" .. "\0\0\0\0"
    local w, h = core.png_info(png)
    assert.are.equal(640, w)
    assert.are.equal(480, h)
  end)

  it("says why bytes are not a PNG", function()
    local w, why = core.png_info("GIF89a....")
    assert.is_nil(w)
    assert.matches("not a PNG", why)
    w, why = core.png_info("\137PNG\r\n\26\n\0\0")
    assert.is_nil(w)
    assert.matches("truncated", why)
    assert.has_error(function() core.png_info(nil) end)
  end)

  it("makes random version 4 UUIDs", function()
    local seen = {}
    for _ = 1, 100 do
      local u = core.uuid4()
      assert.matches("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$", u)
      assert.is_nil(seen[u])
      seen[u] = true
    end
  end)
end)

describe("sessions.core's OS layer", function()
  local dir
  setup(function() dir = tmpdir() end)
  teardown(function() os.execute("rm -rf " .. util.quote(dir)) end)

  it("tells the monotonic time and sleeps by it", function()
    local t0 = core.monotonic()
    core.sleep(0.2)
    local t1 = core.monotonic()
    assert.is_true(t1 - t0 >= 0.2, "slept " .. (t1 - t0))
    core.sleep(0)
    assert.has_error(function() core.sleep(-1) end)
  end)

  it("gives the uid and what stat says of a path", function()
    local p = io.popen("id -u")
    assert.equal(tonumber(p:read("l")), core.getuid())
    p:close()
    local f = util.write(dir .. "/f.txt", "12345")
    os.execute("chmod 640 " .. util.quote(f))
    local st = core.stat(f)
    assert.equal("file", st.type)
    assert.equal(5, st.size)
    assert.equal(core.getuid(), st.uid)
    assert.equal(416, st.mode & 4095)                     -- 0640
    assert.equal("directory", core.stat(dir).type)
    assert.is_number(st.mtime)
  end)

  it("fails as luv does: nil, a message naming the path, the errno's name", function()
    local v, msg, name = core.stat(dir .. "/missing")
    assert.is_nil(v)
    assert.equal("stat " .. dir .. "/missing: No such file or directory", msg)
    assert.equal("ENOENT", name)
    util.write(dir .. "/plain", "x")
    v, msg, name = core.mkdir(dir .. "/plain/sub")
    assert.is_nil(v)
    assert.equal("ENOTDIR", name)
    v, msg, name = core.spawn{ dir .. "/no-such-program" }
    assert.is_nil(v)
    assert.matches("^spawn .*no%-such%-program: No such file or directory$", msg)
    assert.equal("ENOENT", name)
    v, msg, name = core.wait(1)                           -- not our child
    assert.is_nil(v)
    assert.equal("ECHILD", name)
    v, msg, name = core.lock(dir)                          -- a directory
    assert.is_nil(v)
    assert.equal("EISDIR", name)
  end)

  it("makes directories like mkdir -p, with a mode", function()
    assert.is_true(core.mkdir(dir .. "/a/b/c", 448))         -- 0700
    assert.equal(448, core.stat(dir .. "/a/b/c").mode & 4095)
    assert.is_true(core.mkdir(dir .. "/a/b/c", 448))         -- already there: fine
  end)

  it("takes an exclusive lock, gives up after its timeout, and lets go", function()
    local path = dir .. "/lock"
    local held = assert(core.lock(path))
    local t0 = core.monotonic()
    local other, msg, name = core.lock(path, 0.3)           -- another open file: refused
    assert.is_nil(other)
    assert.equal("ETIMEDOUT", name)
    assert.matches("still held", msg)
    assert.is_true(core.monotonic() - t0 >= 0.3)
    -- a child started meanwhile does not inherit it: once we let go, it is free
    local pid = assert(core.spawn{ "sleep", "5" })
    held:unlock()
    do
      local again <close> = assert(core.lock(path, 0))
      assert.matches("held", tostring(again))
    end
    assert.truthy(core.lock(path, 0))                       -- <close> let go of it
    os.execute("kill " .. pid)
    assert.same({ "signal", 15 }, { core.wait(pid) })
  end)

  it("spawns a program without a shell, output appended to a file", function()
    local out = dir .. "/out.txt"
    util.write(out, "before\n")
    local pid = assert(core.spawn({ "printf", "[%s]", "a b", "c'd", "$HOME" },
                                  { stdout = out }))
    assert.same({ "exit", 0 }, { core.wait(pid) })
    assert.equal("before\n[a b][c'd][$HOME]", util.read(out))
    pid = assert(core.spawn({ "/bin/sh", "-c", "cat; echo err >&2; exit 3" },
                            { stdout = out, stderr = out }))   -- stdin: /dev/null
    assert.same({ "exit", 3 }, { core.wait(pid) })
    assert.equal("before\n[a b][c'd][$HOME]err\n", util.read(out))
  end)
end)

describe("the error value", function()
  it("prints a transport error as its message, and a module's as one sentence", function()
    local e = core.error{ kind = "transport", code = 7, message = "GET http://x/: refused" }
    assert.is_true(core.is_error(e))
    assert.equal("GET http://x/: refused", tostring(e))
    e = core.error{ module = "sessions", kind = "http", op = "download", status = 404,
                    code = "FileNotFound", message = "no\n  such   file ", request_id = "r1", retries = 1 }
    assert.equal("sessions: download failed (HTTP 404 FileNotFound): no such file [request id r1] after 1 retry",
                 tostring(e))
    e = core.error{ module = "llm", op = "chat", kind = "api", status = 401, code = "invalid_api_key",
                    url = "https://api/x", message = "Incorrect key", hint = "check OPENAI_API_KEY" }
    assert.equal("llm: chat failed (HTTP 401 invalid_api_key) from https://api/x: Incorrect key " ..
                 "(check OPENAI_API_KEY)", tostring(e))
    e = core.error{ module = "sessions", kind = "transport", op = "execute", code = 28, message = ("x"):rep(700) }
    assert.equal("sessions: execute failed: " .. ("x"):rep(600) .. "\u{2026}", tostring(e))
    assert.is_false(core.is_error({ kind = "transport" }))
  end)
end)
