-- The transport against the real sesh-pool (libmicrohttpd): streaming both ways,
-- over TCP and a unix socket, one by one and in parallel.
local http = require "sessions.http"
local cjson = require "cjson"
local poolsupport = require "support.pool"
local support = require "support.stub_http"

local MB = 1024 * 1024

local function write_file(path, mb, seed)
  local f = assert(io.open(path, "wb"))
  local block = {}
  for i = 0, 255 do block[#block + 1] = string.char((i * 7 + seed) % 256) end
  block = table.concat(block):rep(4096)
  for i = 1, mb do f:write(block:sub(i + 1) .. block:sub(1, i)) end
  f:close()
end

local function same_files(a, b)
  local fa, fb = assert(io.open(a, "rb")), io.open(b, "rb")
  if not fb then fa:close() return false end
  local same = true
  repeat
    local x, y = fa:read(MB), fb:read(MB)
    if x ~= y then same = false break end
  until x == nil
  fa:close(); fb:close()
  return same
end

for _, transport in ipairs{ "tcp", "unix" } do
  describe("sessions.http with the real sesh-pool over " .. transport, function()
    local pool
    setup(function() pool = poolsupport.start{ socket = transport == "unix" } end)
    teardown(function()
      pool:stop()
      pool:cleanup()
    end)

    it("runs 100 executes on one session over one kept-alive connection", function()
      local id, connects = "keep-" .. transport, 0
      for i = 1, 100 do
        local res, props = pool:execute("6*" .. i, { identifier = id })
        assert.are.equal(200, res.status, res.body)
        assert.are.equal(6 * i, props.result)
        connects = connects + res.connects
      end
      assert.is_true(connects <= 1, "connections opened for 100 executes: " .. connects)
    end)

    it("streams an upload from disk and a download to disk, bytes intact", function()
      local src, dst = support.tmpname("pool.up"), support.tmpname("pool.down")
      write_file(src, 40, 3)
      local res = pool:request{ method = "POST", path = "files/upload", identifier = "t-" .. transport,
        multipart = { { name = "file", filename = "big.bin", file = src,
                        content_type = "application/octet-stream" } } }
      assert.are.equal(200, res.status, res.body)
      assert.are.equal(40 * MB, cjson.decode(res.body).value[1].properties.size)
      res = pool:request{ path = "files/content/big.bin", identifier = "t-" .. transport,
                          output_file = dst }
      assert.are.equal(200, res.status)
      assert.is_nil(res.body)
      assert.is_true(same_files(src, dst))
      os.remove(src); os.remove(dst)
    end)

    it("keeps an error answer from the pool in res.body, not in output_file", function()
      local dst = support.tmpname("pool.missing")
      local res = pool:request{ path = "files/content/nope.bin", identifier = "t-" .. transport,
                                output_file = dst }
      assert.are.equal(404, res.status)
      assert.truthy(res.body)
      assert.is_nil(io.open(dst))
    end)

    it("runs uploads to four sessions in parallel", function()
      local fns, srcs = {}, {}
      for i = 1, 4 do
        srcs[i] = support.tmpname("par" .. i)
        write_file(srcs[i], 4, i)
        fns[i] = function()
          local c = http.client{ unix_socket = pool.socket, timeout = 120 }
          local res = pool:request{ client = c, method = "POST", path = "files/upload",
            identifier = "par-" .. transport .. i,
            multipart = { { name = "file", filename = "p.bin", file = srcs[i] } } }
          c:close()
          return res.status
        end
      end
      local results, errors = http.run(fns)
      assert.is_nil(errors)
      assert.are.same({ 200, 200, 200, 200 }, results)
      for i = 1, 4 do
        local dst = support.tmpname("par.down" .. i)
        local res = pool:request{ path = "files/content/p.bin", identifier = "par-" .. transport .. i,
                                  output_file = dst }
        assert.are.equal(200, res.status)
        assert.is_true(same_files(srcs[i], dst), "session " .. i)
        os.remove(dst); os.remove(srcs[i])
      end
    end)
  end)
end
