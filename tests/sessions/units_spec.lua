-- The module's pure parts, checked against the reference they copy: Python's
-- json.dumps and LangChain's sanitize_input regexes (run in real Python).
local sessions = require "sessions"
local json = require "sessions.json"
local protocol = require "sessions.protocol"
local errors = require "sessions.errors"

local PYTHON = os.getenv("PYTHON") or "/usr/bin/python3"

local function tmpfile(content)
  local p = os.tmpname()
  local f = assert(io.open(p, "wb"))
  f:write(content)
  f:close()
  return p
end

-- Run a Python program with stdin from a string; returns its stdout.
local function python(prog, input)
  local prog_path, in_path = tmpfile(prog), tmpfile(input or "")
  local p = assert(io.popen(("%s %s < %s"):format(PYTHON, prog_path, in_path)))
  local out = p:read("a")
  p:close()
  os.remove(prog_path); os.remove(in_path)
  return out
end

describe("json", function()
  it("keeps integers as integers and floats as floats", function()
    local v = json.decode('{"a": 42, "b": 42.0, "c": -7, "d": 1e3, "e": 12345678901234567}')
    assert.equal("integer", math.type(v.a))
    assert.equal("float", math.type(v.b))
    assert.equal(-7, v.c)
    assert.equal("float", math.type(v.d))
    assert.equal(12345678901234567, v.e)
  end)

  it("decodes escapes, surrogate pairs and null", function()
    local v = json.decode('["\\u00e9\\ud83d\\ude00\\n\\"\\\\\\/", null, true, false]')
    assert.equal("é😀\n\"\\/", v[1])
    assert.equal(json.null, v[2])
    assert.is_true(v[3]); assert.is_false(v[4])
  end)

  it("decodes as Python's json.loads does: types, key order, NaN and infinities", function()
    local texts = {
      '{"$id":"1","properties":{"$id":"2","status":"Success","stdout":"","stderr":"","result":42}}',
      '{"b": 1, "a": [1, 2.5, -0, -0.0, 1e3, 1E-2, 9223372036854775807, -9223372036854775808, 1E400], ' ..
        '"c": {}, "d": [], "e": [[]]}',
      '["\\u00e9\\ud83d\\ude00\\n\\"\\\\\\/\\b\\f\\r\\t", "\\u0000"]',
      '{"k": 1, "j": 2, "k": 3}',
      ' \t\r\n {"deep": [[[[{"x": [null, true, false]}]]]]} \n',
      '"a string alone"', '12', '-3.25', 'null', 'true', '[NaN, Infinity, -Infinity]',
    }
    local ours = {}
    for i, text in ipairs(texts) do ours[i] = json.dumps(json.decode(text, { ordered = true })) end
    local theirs = json.decode(python([[
import json, sys
print(json.dumps([json.dumps(json.loads(t)) for t in json.loads(sys.stdin.read())]))
]], json.encode(texts)))
    for i, text in ipairs(texts) do assert.equal(theirs[i], ours[i], text) end
    -- integers stay integers; what does not fit in 64 bits is a float
    local v = json.decode("[42, 9223372036854775808, 1.0, []]")
    assert.equal("integer", math.type(v[1]))
    assert.equal("float", math.type(v[2]))
    assert.equal("float", math.type(v[3]))
    assert.equal("array", json.type_of(v[4]))
    assert.equal("object", json.type_of(json.decode("{}")))
  end)

  it("refuses what is not JSON, saying where and why", function()
    local cases = {
      { '{"a": 1} x', 10, "trailing characters" }, { '{"a": ', 7, "unexpected end" },
      { '', 1, "unexpected end" }, { '[1.]', 2, "bad number" }, { '[01]', 2, "bad number" },
      { '{"a" 1}', 6, "expected ':'" }, { '"\\q"', 2, "bad escape" }, { '"\\u12"', 2, "bad \\u escape" },
      { '[1,]', 4, "unexpected character ']'" }, { '{"a": 1,}', 9, "expected a string key" },
      { '[1 2]', 4, "expected ',' or ']'" }, { '{"a": 1 "b": 2}', 9, "expected ',' or '}'" },
      { '"open', 1, "unterminated string" }, { 'nul', 1, "unexpected word" },
      { '{\n"a":\n  x}', 10, "line 3" }, { ('['):rep(1001) .. (']'):rep(1001), 1001, "nested deeper" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(json.decode, c[1])
      assert.is_false(ok, c[1])
      assert.matches("^invalid JSON at byte " .. c[2] .. " %(line %d+%): ", err, nil, c[1])
      assert.is_truthy(err:find(c[3], 1, true), err)
    end
    assert.equal(1000, #json.encode(json.decode(('['):rep(1000) .. (']'):rep(1000))) // 2)
  end)

  it("takes or refuses mangled texts as Python's json.loads does", function()
    -- bytes flipped, cut, doubled in real answers: never a crash, and the same
    -- verdict and the same value as Python's decoder
    local seeds = {
      '{"$id":"1","properties":{"$id":"2","status":"Success","stdout":"a\\nb","stderr":"","result":{"type":"image","format":"png","base64_data":"iVBORw0KGgo="},"executionTimeInMilliseconds":12}}',
      '{"value":[{"name":"a b.csv","size":12,"lastModifiedAt":"2026-11-29T07:00:00Z","type":"file"}],"nextLink":null}',
      '[1, -2.5e-3, "\\u00e9\\ud83d\\ude00", true, false, null, [], {}, [[{"k": [0]}]], NaN]',
    }
    local alphabet = '{}[]":,.-+eE0123456789 \\untrfalsu\n\t'
    math.randomseed(7)
    local texts = {}
    for i = 1, 3000 do
      local t = seeds[i % #seeds + 1]
      for _ = 1, math.random(1, 4) do
        local at = math.random(1, #t)
        local op = math.random(3)
        if op == 1 then       -- replace a byte
          local k = math.random(#alphabet)
          t = t:sub(1, at - 1) .. alphabet:sub(k, k) .. t:sub(at + 1)
        elseif op == 2 then   -- cut
          t = t:sub(1, at)
        else                  -- double a piece
          t = t:sub(1, at) .. t:sub(math.max(1, at - 5), at) .. t:sub(at + 1)
        end
      end
      texts[i] = t
    end
    local verdicts = json.decode(python([[
import json, sys
def plain(v):   # no lone surrogate, no integer beyond 64 bits: comparable
    if isinstance(v, bool) or v is None or isinstance(v, float): return True
    if isinstance(v, int): return -2**63 <= v < 2**63
    if isinstance(v, str): return not any(0xD800 <= ord(c) <= 0xDFFF for c in v)
    if isinstance(v, list): return all(plain(x) for x in v)
    return all(plain(k) and plain(x) for k, x in v.items())
out = []
for t in json.loads(sys.stdin.read()):
    try:
        v = json.loads(t, strict=False)
    except ValueError:
        out.append(False)
        continue
    out.append(json.dumps(v) if plain(v) else True)
print(json.dumps(out))
]], json.encode(texts)))
    local taken = 0
    for i, t in ipairs(texts) do
      local ok, v = pcall(json.decode, t, { ordered = true })
      assert.equal(verdicts[i] ~= false, ok, t .. " -> " .. tostring(v))
      if ok then
        taken = taken + 1
        if type(verdicts[i]) == "string" then assert.equal(verdicts[i], json.dumps(v), t) end
      else
        assert.matches("^invalid JSON at byte %d+ %(line %d+%): ", v)
      end
    end
    assert.is_true(taken > 100, "too few mangled texts were valid: " .. taken)
  end)

  it("writes what Python's json.dumps(indent=2) writes", function()
    local text = '{"result": {"type": "image", "format": "png", "n": [1, 2.5, 1e-05, 1e+16, ' ..
                 '123456.789, 0.1, -0.0, 1e15, 3.0], "empty": {}, "none": [], "x": null}, ' ..
                 '"stdout": "h\\u00e9llo \\ud83d\\ude00\\n\\t\\u0001\\"q\\" / \\\\", "stderr": "", "ok": true}'
    local ours = json.dumps(json.decode(text, { ordered = true }), 2)
    local theirs = python("import json,sys; sys.stdout.write(json.dumps(json.loads(sys.stdin.read()), indent=2))", text)
    assert.equal(theirs, ours)
  end)

  it("formats floats like Python's repr", function()
    local xs = { 1.0, 100.0, 1e15, 1e16, 1.2e-16, 0.1, 0.0001, 0.00001, 123456.789, -2.5, 1 / 3, 1e22, 5e-324, 2 ^ 53 }
    local strs = {}
    for i, x in ipairs(xs) do strs[i] = json.py_float(x) end
    local theirs = python("import sys; print(' '.join(repr(float(x)) for x in sys.stdin.read().split()))",
                          table.concat(strs, " "))
    assert.equal(theirs:gsub("\n$", ""), table.concat(strs, " "))
    assert.equal("1e+16", json.py_float(1e16))
    assert.equal("0.0001", json.py_float(0.0001))
  end)
end)

describe("sanitize", function()
  it("follows LangChain's sanitize_input exactly", function()
    local cases = {
      "```python\nprint(1)\n```", "  \n```Python\n x = 1\n```  \n", "PYTHON print(2)",
      "print(3)", "``` \n\tpython3 = 4\n```", "\n\n  plain  \n\n", "pythonic = 5`",
    }
    local prog = [[
import re, sys, json
def _sanitize_input(query):
    query = re.sub(r"^(\s|`)*(?i:python)?\s*", "", query)
    query = re.sub(r"(\s|`)*$", "", query)
    return query
print(json.dumps([_sanitize_input(q) for q in json.loads(sys.stdin.read())]))
]]
    local theirs = json.decode(python(prog, require("cjson").encode(cases)))
    for i, c in ipairs(cases) do
      assert.equal(theirs[i], sessions.sanitize(c), "case " .. i)
    end
  end)
end)

describe("protocol", function()
  it("builds URLs as pool-api.md section 1 says", function()
    assert.equal("https://x/p/code/execute?identifier=a%20b%23c&api-version=2024-02-02-preview",
      protocol.url("https://x/p", "code/execute", { { "identifier", "a b#c" }, { "api-version", "2024-02-02-preview" } }))
    assert.equal("https://x/p/files?sv=1&identifier=id1",
      protocol.url("https://x/p/?sv=1", "files", { { "identifier", "id1" } }))
  end)

  it("url-encodes file names: spaces, #, %, non-ASCII, subdirectories", function()
    local req = protocol.download(1, "s1", "2024-02-02-preview", "sub dir/r#1 100%é.txt")
    assert.equal("files/content/sub%20dir/r%231%20100%25%C3%A9.txt", req.path)
    req = protocol.download(2, "s1", "2025-10-02-preview", "/mnt/data/sub dir/r#1.txt")
    assert.equal("files/r%231.txt/content", req.path)
    assert.same({ "path", "sub dir" }, req.query[3])
  end)

  it("refuses file names that leave /mnt/data or name nothing", function()
    assert.is_nil((protocol.check_name("x", "../etc/passwd")))
    assert.is_nil((protocol.check_name("x", "a/./b")))
    assert.is_nil((protocol.check_name("x", "dir/")))
    assert.is_nil((protocol.check_name("x", "")))
    assert.is_true((protocol.check_name("x", "a/b c.txt")))
  end)

  it("normalizes both generations' execution answers to one shape", function()
    local g1 = protocol.parse_execution(1, json.decode(
      '{"$id":"1","properties":{"$id":"2","status":"Success","stdout":"","stderr":"","result":42,"executionTimeInMilliseconds":8}}'))
    local g2 = protocol.parse_execution(2, json.decode(
      '{"id":"e1","identifier":"s","executionType":"Synchronous","status":"Succeeded",' ..
      '"result":{"stdout":"","stderr":"","executionResult":42,"executionTimeInMilliseconds":8}}'))
    for _, r in ipairs{ g1, g2 } do
      assert.equal("Success", r.status)
      assert.equal(42, r.result)
      assert.equal(8, r.ms)
      assert.equal("", r.stdout)
    end
    local f2 = protocol.parse_execution(2, json.decode(
      '{"id":"e2","status":"Failed","result":null,"error":{"code":"ExecutionFailed","message":"boom"}}'))
    assert.equal("Failure", f2.status)
    assert.equal("ExecutionFailed", f2.error.code)
    assert.is_nil(f2.result)
  end)

  it("reads service errors from body and headers", function()
    local code, msg, rid = protocol.parse_error({ ["x-ms-error-code"] = "SessionNotFound", ["x-ms-request-id"] = "r-1" },
      '{"error": {"code": "SessionNotFound", "message": "gone", "target": "identifier"}}')
    assert.equal("SessionNotFound", code); assert.equal("gone", msg); assert.equal("r-1", rid)
    code, msg = protocol.parse_error({}, "")
    assert.is_nil(code); assert.is_nil(msg)
  end)
end)

describe("errors", function()
  it("print as one sentence and carry their fields", function()
    local e = errors.new{ kind = "http", op = "execute", status = 404, code = "SessionNotFound",
                          message = "Session 'x' was not found.\nsecond line", request_id = "abc", retries = 2 }
    local s = tostring(e)
    assert.equal("sessions: execute failed (HTTP 404 SessionNotFound): Session 'x' was not found. second line " ..
                 "[request id abc] after 2 retries", s)
    assert.is_nil(s:find("\n"))
    assert.equal(404, e.status)
    assert.is_true(errors.is(e, "http"))
  end)

  it("never show a bearer token or a JWT", function()
    local e = errors.new{ op = "x", message = "sent Authorization: Bearer abc.def-ghi and eyJhbGciOi.eyJzdWIi.c2ln" }
    local s = tostring(e)
    assert.is_nil(s:find("abc.def-ghi", 1, true))
    assert.is_nil(s:find("eyJhbGciOi", 1, true))
  end)
end)

describe("sessions.new", function()
  it("rejects bad options with errors that name them", function()
    local ok, e = pcall(sessions.new, { endpoint = "http://127.0.0.1:9", token = "t", api_verson = "x" })
    assert.is_false(ok)
    assert.equal("usage", e.kind)
    assert.matches("unknown option 'api_verson'", tostring(e))
    ok, e = pcall(sessions.new, { endpoint = "ftp://x", token = "t" })
    assert.matches("endpoint must be an http", tostring(e))
    ok, e = pcall(sessions.new, { endpoint = "http://127.0.0.1:9", token = "t", api_version = "1999-01-01" })
    assert.matches("unknown api_version", tostring(e))
    ok, e = pcall(sessions.new, { endpoint = "http://127.0.0.1:9", token = "t", id = "abc" })
    assert.matches("id must be 4 to 128", tostring(e))
  end)

  it("leaves idempotence to the method unless a request says", function()
    local s = sessions.new{ endpoint = "http://127.0.0.1:9", token = "t", retries = 3 }
    -- nil: the transport decides by method (a GET may be retried after a reset)
    assert.is_nil(s:_retry{ op = "download", method = "GET" }.idempotent)
    assert.is_nil(s:_retry{ op = "execute", method = "POST" }.idempotent)
    assert.is_true(s:_retry{ op = "upload", method = "POST", idempotent = true }.idempotent)
    assert.is_false(s:_retry{ op = "x", method = "GET", idempotent = false }.idempotent)
  end)

  it("never puts the session id into a transport error", function()
    local s = sessions.new{ endpoint = "http://127.0.0.1:9", token = "t", retries = 1,
                            id = "secret-session-id-42" }
    local ok, e = pcall(s.execute, s, "1")
    assert.is_false(ok)
    assert.is_nil(tostring(e):find("secret-session-id-42", 1, true))
    for k, v in pairs(e) do
      assert.is_nil(tostring(v):find("secret-session-id-42", 1, true), "in field " .. tostring(k))
    end
  end)

  it("gives each session object a fresh UUID v4 id", function()
    local a = sessions.new{ endpoint = "http://127.0.0.1:9", token = "t" }
    local b = sessions.new{ endpoint = "http://127.0.0.1:9", token = "t" }
    assert.matches("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x+$", a.id)
    assert.not_equal(a.id, b.id)
  end)

  it("refuses to send an Azure token over plain http to another host", function()
    local ok, e = pcall(sessions.new, { endpoint = "http://example.invalid/pool" })
    assert.is_false(ok)
    assert.matches("refusing to send an Azure token over plain http", tostring(e))
  end)

  it("reports an endpoint that does not answer as a transport error", function()
    local s = sessions.new{ endpoint = "http://127.0.0.1:9", token = "t", retries = 1, connect_timeout = 2 }
    local ok, e = pcall(s.execute, s, "1")
    assert.is_false(ok)
    assert.equal("transport", e.kind)
    assert.equal("execute", e.op)
    assert.matches("^sessions: execute failed: ", tostring(e))
    assert.equal(0, e.retries)
  end)

  it("retries a refused connection, even for an execute (nothing was sent)", function()
    local s = sessions.new{ endpoint = "http://127.0.0.1:9", token = "t", retries = 3, connect_timeout = 2 }
    local ok, e = pcall(s.execute, s, "1")
    assert.is_false(ok)
    assert.equal("transport", e.kind)
    assert.equal(2, e.retries)
    assert.matches("after 2 retries$", tostring(e))
  end)

  it("says which generation an operation needs", function()
    local s = sessions.new{ endpoint = "http://127.0.0.1:9", token = "t", api_version = "2024-02-02-preview" }
    local ok, e = pcall(s.execute, s, "1", { async = true })
    assert.is_false(ok)
    assert.equal("usage", e.kind)
    assert.matches("asynchronous execution needs api_version 2024%-10%-02%-preview or later", tostring(e))
    ok, e = pcall(s.files, s, { recursive = true })
    assert.matches("needs api_version 2025%-10%-02%-preview", tostring(e))
    ok, e = pcall(s.execute, s, "1", { asynch = true })
    assert.matches("unknown option 'asynch'", tostring(e))
  end)
end)
