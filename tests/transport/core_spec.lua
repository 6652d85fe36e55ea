-- sessions.core: base64, PNG header, UUID.
local core = require "sessions.core"

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
