-- sesh-pool's MCP options: the key file, what --mcp-stdio refuses, and a
-- stdout that holds nothing but messages.

local mcpt = require "support.mcp"
local poolmod = require "support.pool"
local util = require "support.util"

local quote = util.quote

-- Runs sesh-pool with args and stdin from a file; exit status, stdout, stderr.
local function run(args, stdin_text)
  local dir = poolmod.tmpdir()
  util.write(dir .. "/in", stdin_text or "")
  local words = {}
  for _, a in ipairs(args) do words[#words + 1] = quote(a) end
  local ok, _, code = os.execute(("%s %s <%s >%s 2>%s"):format(quote(poolmod.binary()), table.concat(words, " "),
    quote(dir .. "/in"), quote(dir .. "/out"), quote(dir .. "/err")))
  local out, err = util.read(dir .. "/out"), util.read(dir .. "/err")
  os.execute("rm -rf " .. quote(dir))
  return ok and 0 or code, out, err
end

describe("sesh-pool --mcp-key-file", function()
  it("generates the key file (0600) when missing, reuses it after, and says so at start", function()
    local pool = mcpt.http_pool()
    local key_file = pool.dir .. "/mcp-key"
    assert.matches("^%x+$", pool.mcp_key)
    assert.equal(64, #pool.mcp_key)
    assert.equal("600", poolmod.sh("stat -c %a " .. quote(key_file)):match("%d+"))
    assert.matches("mcp key file " .. key_file:gsub("%p", "%%%0"), pool.line)
    assert.is_nil(pool:log():find(pool.mcp_key, 1, true))        -- never in the log
    pool:stop()
    local again = poolmod.start{ dir = pool.dir, args = { "--mcp-key-file", key_file } }
    assert.equal(pool.mcp_key, (util.read(key_file):gsub("%s+$", "")))
    again:stop()
    pool:cleanup()
  end)
end)

describe("sesh-pool --mcp-stdio", function()
  it("refuses the options of a listening pool", function()
    for _, extra in ipairs{ { "--listen", "127.0.0.1:0" }, { "--socket", "/tmp/x.sock" }, { "--daemon" },
                            { "--token-file", "/tmp/t" }, { "--mcp-key-file", "/tmp/k" } } do
      local args = { "--mcp-stdio" }
      for _, a in ipairs(extra) do args[#args + 1] = a end
      local code, out, err = run(args)
      assert.equal(2, code)
      assert.equal("", out)
      assert.matches("%-%-mcp%-stdio serves its client on stdin and stdout only", err)
    end
  end)

  it("writes nothing but answers on stdout, logs on stderr, and exits 0 at the end of stdin", function()
    local dir = poolmod.tmpdir()
    local code, out, err = run(mcpt.stdio_args(dir),
      '{"jsonrpc":"2.0","id":1,"method":"ping"}\nnot json\n{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
    assert.equal(0, code)
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.equal(2, #lines)
    assert.equal('{"jsonrpc":"2.0","id":1,"result":{}}', lines[1])
    assert.matches('^{"jsonrpc":"2.0","id":null,"error":{"code":%-32700,"message":"Parse error: ', lines[2])
    assert.matches("serving MCP on stdin and stdout", err)
    assert.matches("stopped", err)
    os.execute("rm -rf " .. quote(dir))
  end)
end)
