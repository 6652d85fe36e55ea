-- http.run: many requests at once from coroutines, on one libcurl multi handle.
local http = require "sessions.http"
local support = require "support.stub_http"

local uptime = require("sessions.core").monotonic     -- the one clock of every timing

describe("http.run", function()
  local stub, c
  setup(function()
    stub = support.start()
    c = http.client{ timeout = 20 }
  end)
  teardown(function()
    c:close()
    stub:stop()
  end)

  it("runs eight 1-second requests concurrently, results in order", function()
    local fns = {}
    for i = 1, 8 do
      fns[i] = function()
        local res = c:request{ url = stub.url .. "/sleep?s=1&i=" .. i }
        return i .. ":" .. res.body
      end
    end
    local t0 = uptime()
    local results, errors = http.run(fns)
    local elapsed = uptime() - t0
    assert.is_nil(errors)
    for i = 1, 8 do assert.are.equal(i .. ":slept 1", results[i]) end
    -- one after another would take 8 s; together about 1 s
    assert.is_true(elapsed < 4, "took " .. elapsed .. " s")
  end)

  it("runs several requests in sequence inside one function", function()
    local results = http.run{
      function()
        local a = c:request{ url = stub.url .. "/hello" }
        local b = c:request{ url = stub.url .. "/status/201" }
        return a.body .. "+" .. b.status
      end,
      function() return c:request{ url = stub.url .. "/hello" }.status end,
    }
    assert.are.same({ "hello world+201", 200 }, results)
  end)

  it("collects errors per function and keeps the other results", function()
    local results, errors = http.run{
      function() return c:request{ url = stub.url .. "/hello" }.body end,
      function() return c:request{ url = "http://127.0.0.1:1/" } end,
      function() error("plain failure") end,
      function() return nil end,
      function() error(nil) end,
    }
    assert.are.equal("hello world", results[1])
    assert.is_nil(results[2])
    assert.are.equal("transport", errors[2].kind)
    assert.matches("plain failure", errors[3])
    assert.is_nil(errors[1])
    assert.is_nil(errors[4])
    assert.matches("nil", errors[5])
  end)

  it("lets a function catch a request error with pcall", function()
    local results = http.run{
      function()
        local ok, err = pcall(c.request, c, { url = "http://127.0.0.1:1/" })
        return (not ok) and err.kind
      end,
    }
    assert.are.equal("transport", results[1])
  end)

  it("retries inside run without blocking the others", function()
    local t0 = uptime()
    local results, errors = http.run{
      function()
        return c:request{ url = stub.url .. "/throttle?key=p1&n=1&after=1",
                          retry = { max = 2, statuses = { 429 } } }.attempts
      end,
      function() return c:request{ url = stub.url .. "/sleep?s=1" }.body end,
    }
    assert.is_nil(errors)
    assert.are.same({ 2, "slept 1" }, results)
    assert.is_true(uptime() - t0 < 3)
  end)

  it("lets core.sleep wait beside the transfers: sleeps yield to the scheduler", function()
    local core = require "sessions.core"
    local t0 = uptime()
    local results, errors = http.run{
      function() core.sleep(1); return "slept" end,
      function() core.sleep(1); return "slept too" end,
      function() return c:request{ url = stub.url .. "/sleep?s=1" }.body end,
    }
    local took = uptime() - t0
    assert.is_nil(errors)
    assert.are.same({ "slept", "slept too", "slept 1" }, results)
    -- one after another would take 3 s
    assert.is_true(took >= 1 and took < 2, "took " .. took .. " s")
  end)

  it("blocks outside run and inside a coroutine run does not own", function()
    local results = http.run{
      function()
        local co = coroutine.wrap(function() return c:request{ url = stub.url .. "/hello" }.body end)
        return co()
      end,
    }
    assert.are.equal("hello world", results[1])
  end)

  it("runs a nested http.run", function()
    local results = http.run{
      function()
        local inner = http.run{
          function() return c:request{ url = stub.url .. "/sleep?s=0.5" }.body end,
          function() return c:request{ url = stub.url .. "/hello" }.body end,
        }
        return inner[1] .. "|" .. inner[2]
      end,
      function() return c:request{ url = stub.url .. "/sleep?s=0.5" }.status end,
    }
    assert.are.same({ "slept 0.5|hello world", 200 }, results)
  end)

  it("finishes a request whose client is closed meanwhile", function()
    local k = http.client{ timeout = 10 }
    local results, errors = http.run{
      function() return k:request{ url = stub.url .. "/sleep?s=0.5" }.body end,
      function() k:close() return "closed" end,
    }
    assert.is_nil(errors)
    assert.are.same({ "slept 0.5", "closed" }, results)
    assert.has_error(function() k:request{ url = stub.url .. "/hello" } end)
  end)

  it("reports a function that yields on its own", function()
    local _, errors = http.run{ function() coroutine.yield(1) end }
    assert.matches("yielded outside a request", errors[1])
  end)

  it("rejects what is not a list of functions", function()
    assert.has_error(function() http.run{ 1 } end)
    assert.has_error(function() http.run() end)
  end)

  it("returns empty results for an empty list", function()
    local results, errors = http.run{}
    assert.are.same({}, results)
    assert.is_nil(errors)
  end)
end)
