-- Every operation of both API generations against a real sesh-pool with real
-- sandboxes and real Python.
local sessions = require "sessions"
local core = require "sessions.core"
local P = require "support.pool"
local S = require "support.azure_stub"

local pool

setup(function() pool = P.start{ args = { "--ready-sessions", "2" } } end)
teardown(function() if pool then pool:stop(); pool:cleanup() end end)

local ALL_BYTES = {}
for i = 0, 255 do ALL_BYTES[#ALL_BYTES + 1] = string.char(i) end
ALL_BYTES = table.concat(ALL_BYTES):rep(64) .. "\0\0end"

local function by_name(list, name)
  for _, f in ipairs(list) do if f.name == name or f.path == name then return f end end
end

for _, version in ipairs{ "2024-02-02-preview", "2025-10-02-preview" } do
  local gen = version < "2024-10" and 1 or 2

  describe("api " .. version .. ":", function()
    local s
    before_each(function() s = pool:session{ api_version = version } end)
    after_each(function() pcall(s.close, s) end)

    it("executes and returns the normalized result", function()
      local r = s:execute("6 * 7")
      assert.equal("Success", r.status)
      assert.is_true(r.ok)
      assert.equal(42, r.result)
      assert.equal("integer", math.type(r.result))
      assert.equal("", r.stdout)
      assert.is_number(r.ms)
      assert.is_table(r.raw)
      if gen == 1 then assert.equal("Success", r.raw.properties.status)
      else assert.equal("Succeeded", r.raw.status) end
    end)

    it("gives results as pool-api.md section 6 says", function()
      assert.equal("hello", s:execute("'hel' + 'lo'").result)
      assert.equal("", s:execute("None").result)
      assert.equal("", s:execute("x = 1").result)
      assert.is_true(s:execute("True").result)
      assert.equal("{'a': 1}", s:execute("{'a': 1}").result)
      local r = s:execute("print('out'); import sys; print('err', file=sys.stderr)")
      assert.equal("out\n", r.stdout)
      assert.equal("err\n", r.stderr)
    end)

    it("keeps state within a session and not across sessions", function()
      s:execute("secret_var = 1234")
      assert.equal(1234, s:execute("secret_var").result)
      local other = pool:session{ api_version = version }
      local r = other:execute("secret_var")
      assert.equal("Failure", r.status)
      other:close()
    end)

    it("makes a Python exception a Failure result, and check/run raise it", function()
      local r = s:execute("1/0")
      assert.equal("Failure", r.status)
      assert.is_false(r.ok)
      assert.is_nil(r.result)
      assert.matches("ZeroDivisionError", r.stderr)
      local ok, e = pcall(r.check, r)
      assert.is_false(ok)
      assert.equal("python", e.kind)
      assert.equal("ZeroDivisionError", e.code)
      assert.matches("^sessions: execute failed %(ZeroDivisionError%): ZeroDivisionError: division by zero", tostring(e))
      ok, e = pcall(s.run, s, "raise ValueError('bad value')")
      assert.is_false(ok)
      assert.equal("ValueError", e.code)
      assert.equal(7, (s:run("3 + 4")))      -- the session still works
    end)

    it("sends a per-call execution timeout, after which the session still works", function()
      local r = s:execute("import time; time.sleep(10)", { timeout = 1 })
      assert.equal("Failure", r.status)
      assert.is_true(r.ms < 8000)
      if version ~= "2024-02-02-preview" then      -- the second generation names it
        assert.equal("ExecutionTimedOut", r.error and r.error.code)
      end
      assert.equal(2, s:execute("1 + 1").result)
    end)

    it("returns LangChain's JSON text from invoke, with status", function()
      local text = s:invoke("```python\nprint('hi')\n6 * 7\n```")
      assert.equal('{\n  "result": 42,\n  "stdout": "hi\\n",\n  "stderr": "",\n  "status": "Success"\n}', text)
    end)

    it("returns image results, drops their base64 in invoke, saves them", function()
      local code = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.title('t')\nplt.show()"
      local r = s:execute(code)
      assert.is_true(sessions.is_image(r.result))
      assert.is_false(sessions.is_image(s:execute("'png'").result))
      local img = sessions.decode_image(r.result)
      assert.equal("png", img.format)
      assert.is_true(img.width > 100 and img.height > 100)
      local dir = S.tmpdir("img")
      local path = sessions.save_image(r.result, dir .. "/plot.png")
      assert.equal(dir .. "/plot.png", path)
      local bytes = S.read(path)
      assert.equal("\137PNG\r\n\26\n", bytes:sub(1, 8))
      assert.equal(img.width, string.unpack(">I4", bytes, 17))
      local text = s:invoke(code)
      assert.matches('"result": {\n    "type": "image",\n    "format": "png"\n  }', text, 1, true)
      assert.is_nil(text:find("base64_data", 1, true))
      assert.truthy(s:invoke(code, { images = true }):find('"base64_data": "iVBOR', 1, true))
    end)

    it("uploads and downloads every byte value, byte-identical", function()
      local f = s:upload{ name = "bytes.bin", data = ALL_BYTES }
      assert.equal("bytes.bin", f.name)
      assert.equal(#ALL_BYTES, f.size)
      assert.equal(ALL_BYTES, s:download("bytes.bin"))
      local entry = by_name(s:files(), "bytes.bin")
      assert.is_table(entry)
      assert.equal(#ALL_BYTES, entry.size)
      assert.equal(#ALL_BYTES, s:execute("import os; os.path.getsize('/mnt/data/bytes.bin')").result)
    end)

    it("uploads from a local file and downloads to one", function()
      local dir = S.tmpdir("files")
      local src = dir .. "/in.csv"
      local fh = assert(io.open(src, "wb")); fh:write("a,b\n1,2\n"); fh:close()
      s:upload{ file = src }                                   -- the remote name is the base name
      assert.equal(3, s:execute("import pandas as pd; int(pd.read_csv('in.csv').sum().sum())").result)
      local out = s:download("in.csv", dir .. "/out.csv")
      assert.equal(dir .. "/out.csv", out)
      assert.equal("a,b\n1,2\n", S.read(out))
    end)

    it("encodes remote names with spaces, #, %, non-ASCII and a subdirectory", function()
      local name = "sub dir/r#1 100% é😀.txt"
      s:upload{ name = name, data = "odd name" }
      assert.equal("odd name", s:download(name))
      assert.equal("odd name", s:execute("open('/mnt/data/sub dir/r#1 100% é😀.txt').read()").result)
    end)

    it("says which file is missing", function()
      local ok, e = pcall(s.download, s, "missing.txt")
      assert.is_false(ok)
      assert.equal("http", e.kind)
      assert.equal(404, e.status)
      assert.equal("download", e.op)
      assert.matches("missing.txt", tostring(e))
    end)

    it("gets, lists and deletes the session, and reads pool metadata", function()
      s:execute("1")
      local info = s:info()
      assert.equal(s.id, info.id)
      local found = false
      for _, x in ipairs(s:list_sessions()) do if x.id == s.id then found = true end end
      assert.is_true(found)
      local md = s:metadata()
      assert.is_table(md.runtimes)
      assert.is_table(md.raw)
      assert.is_true(s:close())
      local other = pool:session{ api_version = version, id = s.id }
      local ok, e = pcall(other.info, other)
      assert.is_false(ok)
      assert.equal(404, e.status)
    end)
  end)
end

describe("second generation only:", function()
  local s
  before_each(function() s = pool:session{ api_version = "2025-10-02-preview" } end)
  after_each(function() pcall(s.close, s) end)

  it("runs an asynchronous execution and polls it to the end", function()
    local r = s:execute("import time\ntime.sleep(0.5)\n'late'", { async = true })
    assert.equal("Success", r.status)
    assert.equal("late", r.result)
    assert.is_string(r.id)
    assert.equal("late", s:get_execution(r.id).result)
  end)

  it("polls two asynchronous executions side by side: both end in the time of the longer one", function()
    -- Each poll waits 2 s before asking again. A wait that blocked the thread
    -- would make the second execution's wait start after the first one's:
    -- 4 s in all instead of 2.
    local t = pool:session{ api_version = "2025-10-02-preview" }
    finally(function() pcall(t.close, t) end)
    s:run("1"); t:run("1")                   -- both interpreters are up
    local code = "import time\ntime.sleep(1.5)\n'%s'"
    local t0 = core.monotonic()
    local a, b = sessions.gather(
      function() return s:execute(code:format("a"), { async = true, poll_interval = 2 }) end,
      function() return t:execute(code:format("b"), { async = true, poll_interval = 2 }) end)
    local took = core.monotonic() - t0
    assert.equal("a", a.result)
    assert.equal("b", b.result)
    assert.is_true(took < 3.2, ("the two polls took %.1f s"):format(took))
  end)

  it("lists a directory, recursively, and reads file metadata", function()
    s:upload{ name = "top.txt", data = "1" }
    s:upload{ name = "d1/mid.txt", data = "22" }
    s:upload{ name = "d1/d2/low.txt", data = "333" }
    local top = s:files()
    assert.is_table(by_name(top, "top.txt"))
    assert.equal("directory", by_name(top, "d1").type)
    local d1 = s:files{ path = "d1" }
    assert.equal(2, by_name(d1, "mid.txt").size)
    local all = s:files{ recursive = true }
    assert.equal(3, by_name(all, "d1/d2/low.txt").size)
    local meta = s:file("d1/d2/low.txt")
    assert.equal("low.txt", meta.name)
    assert.equal(3, meta.size)
    assert.equal("file", meta.type)
  end)

  it("decodes JPEG and GIF images too, reading format and size from their headers", function()
    s:run("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n" ..
              "fig = plt.figure(figsize=(3, 2), dpi=100)\nplt.plot([1, 2])\n" ..
              "fig.savefig('p.jpg'); fig.savefig('p.png'); plt.close(fig)\n" ..
              "from PIL import Image\nImage.open('p.png').convert('RGB').save('p.gif')")
    local core = require "sessions.core"
    for fmt, name in pairs{ jpeg = "p.jpg", gif = "p.gif" } do
      local img = sessions.decode_image{ type = "image", format = "png", base64_data = core.b64encode(s:download(name)) }
      assert.equal(fmt, img.format)
      assert.equal(300, img.width)
      assert.equal(200, img.height)
    end
  end)

  it("deletes a file", function()
    s:upload{ name = "gone.txt", data = "x" }
    assert.is_true(s:delete("gone.txt"))
    local ok, e = pcall(s.file, s, "gone.txt")
    assert.is_false(ok)
    assert.equal(404, e.status)
  end)

  it("stops a session (2025-10-02-preview)", function()
    s:execute("kept = 1")
    assert.is_true(s:stop())
    assert.equal("Failure", s:execute("kept").status)    -- a new session under the same id
  end)
end)

describe("first generation:", function()
  it("says that deleting a file needs the second generation", function()
    local s = pool:session{ api_version = "2024-02-02-preview" }
    local ok, e = pcall(s.delete, s, "x.txt")
    assert.is_false(ok)
    assert.equal("usage", e.kind)
    assert.matches("2024%-10%-02%-preview", tostring(e))
  end)

  it("finds file metadata by listing", function()
    local s = pool:session{ api_version = "2024-02-02-preview" }
    s:upload{ name = "m.txt", data = "four" }
    assert.equal(4, s:file("m.txt").size)
    s:close()
  end)
end)

describe("authentication", function()
  it("refuses a wrong token with 401 and does not retry it", function()
    local s = pool:session{ token = "wrong-token-value" }
    local ok, e = pcall(s.execute, s, "1")
    assert.is_false(ok)
    assert.equal(401, e.status)
    assert.equal(0, e.retries)
    assert.is_nil(tostring(e):find("wrong-token-value", 1, true))
  end)
end)

describe("lifecycle", function()
  it("close deletes the session on the pool; a closed object refuses work", function()
    local s = pool:session{ api_version = "2025-10-02-preview" }
    s:execute("v = 1")
    assert.is_true(s:close())
    assert.is_true(s:close())           -- twice is fine
    local ok, e = pcall(s.execute, s, "1")
    assert.is_false(ok)
    assert.matches("is closed", tostring(e))
    local probe = pool:session{ api_version = "2025-10-02-preview", id = s.id }
    assert.equal(404, select(2, pcall(probe.info, probe)).status)
  end)

  it("closes a to-be-closed session at the end of its block", function()
    local id
    do
      local s <close> = pool:session{ api_version = "2025-10-02-preview" }
      s:execute("1")
      id = s.id
    end
    local probe = pool:session{ api_version = "2025-10-02-preview", id = id }
    assert.equal(404, select(2, pcall(probe.info, probe)).status)
  end)

  it("keeps the error of a failing block when closing a to-be-closed session", function()
    local ok, e = pcall(function()
      local s <close> = pool:session{}
      s:execute("1")
      error("the block's own error", 0)
    end)
    assert.is_false(ok)
    assert.equal("the block's own error", e)
  end)

  it("restart moves to a new session id and a fresh interpreter", function()
    local s = pool:session{}
    s:execute("state = 5")
    local old = s.id
    local new = s:restart()
    assert.not_equal(old, new)
    assert.equal(new, s.id)
    assert.equal("Failure", s:execute("state").status)
    s:close()
  end)

  it("leaks no connection or file descriptor when session objects are collected", function()
    local function fds()      -- ours, counted by a shell whose parent we are
      local h = io.popen("ls /proc/$PPID/fd | wc -l")
      local n = tonumber(h:read("a"))
      h:close()
      return n
    end
    local warm = pool:session{}
    warm:execute("1")
    collectgarbage(); collectgarbage()
    local before = fds()
    for _ = 1, 60 do      -- each makes a request (a 404: no sandbox is started)
      local s = pool:session{ api_version = "2025-10-02-preview" }
      assert.equal(404, select(2, pcall(s.info, s)).status)
    end
    collectgarbage(); collectgarbage()
    local after = fds()
    assert.is_true(after <= before + 2, ("fds before %d, after %d"):format(before, after))
    warm:close()
  end)
end)
