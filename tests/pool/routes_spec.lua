-- The API versions and their operations are written once on the client side,
-- in protocol.VERSIONS and protocol.NEEDS (lua/sessions/protocol.lua); the
-- pool's routes (host/pool/route.c) must serve exactly that table. Each
-- operation of each version, built by the client's own request builders,
-- goes to a real sesh-pool: what the table lists reaches its route, what it
-- does not is refused as the table says (the version it names included).
local support = require "support.pool"
local protocol = require "sessions.protocol"

-- The answers of a router that did not find the operation.
local ROUTING = { OperationNotFound = true, OperationNotSupported = true, MethodNotAllowed = true,
                  UnsupportedApiVersion = true, MissingApiVersionParameter = true }

-- The arguments of each builder after (gen, identifier, version).
local function build(op, gen, id, version)
  local f = protocol[op]
  if op == "execute" then return f(gen, id, version, "6 * 7") end
  if op == "shell_execute" then return f(gen, id, version, "echo routes") end
  if op == "get_execution" then return f(gen, id, version, "no-such-execution") end
  if op == "upload" or op == "download" or op == "file_info" or op == "delete_file" then
    return f(gen, id, version, "routes.txt")
  end
  if op == "list" then return f(gen, id, version, {}) end
  if op == "list_sessions" or op == "metadata" then return f(gen, version) end
  return f(gen, id, version)
end

describe("sesh-pool's routes and the client's table of versions", function()
  local pool
  setup(function() pool = support.start{} end)
  teardown(function() pool:stop(); pool:cleanup() end)

  local function send(req)
    local res = pool.client:request{
      method = req.method, url = protocol.url(pool.endpoint, req.path, req.query),
      headers = { Authorization = "Bearer " .. pool.token, ["Content-Type"] = req.content_type },
      body = req.body,
      multipart = req.op == "upload" and { { name = "file", filename = req.filename, data = "r" } } or nil,
    }
    local code, message = protocol.parse_error(res.headers, res.body)
    return res, code, message
  end

  it("covers every builder of the protocol", function()
    for _, op in ipairs(protocol.OPERATIONS) do
      assert.is_function(protocol[op], op)
    end
    for op in pairs(protocol.NEEDS) do
      assert.is_truthy(protocol.since(protocol.NEEDS[op]), op)
    end
  end)

  for _, version in ipairs(protocol.VERSIONS) do
    it("serves " .. version.name .. " as the table says", function()
      local id = "routes-" .. version.name
      for _, op in ipairs(protocol.OPERATIONS) do
        local req = build(op, version.gen, id, version.name)
        local res, code, message = send(req)
        local need = protocol.NEEDS[op]
        local what = ("%s %s (%s) -> %d %s"):format(req.method, req.path, op, res.status, tostring(code))
        if not need or version[need] then
          assert.is_true(res.status < 500 and not ROUTING[code], "not routed: " .. what)
        elseif version.gen == 2 then   -- a later version of the same generation has it
          assert.are.equal(404, res.status, what)
          assert.are.equal("OperationNotSupported", code, what)
          assert.matches("needs api%-version " .. protocol.since(need):gsub("%-", "%%-") .. " or later",
                         message, nil, what)
        else                           -- an operation of the second generation only
          assert.are.equal(404, res.status, what)
          assert.are.equal("OperationNotFound", code, what)
          assert.matches("second API generation", message, nil, what)
        end
      end
    end)
  end

  it("refuses a version the table does not hold, listing the table's", function()
    local req = protocol.execute(2, "routes-unknown", "2099-01-01-preview", "1")
    local res, code, message = send(req)
    assert.are.equal(400, res.status)
    assert.are.equal("UnsupportedApiVersion", code)
    assert.are.equal(protocol.known(), message:match("supported: (.*)$"))
    -- the client refuses one older than the table's first before sending anything
    assert.is_nil(protocol.features("2023-01-01-preview"))
  end)
end)
