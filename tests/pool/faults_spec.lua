-- Many clients at once: 50 concurrent executions on 10 sessions all get
-- their own correct answer, and each session ran its executions one at a time.
local support = require "support.pool"
local http = require "sessions.http"
local cjson = require "cjson"

describe("sesh-pool under load", function()
  local pool
  setup(function() pool = support.start{ args = { "--ready-sessions", "2" } } end)
  teardown(function() pool:stop(); pool:cleanup() end)

  it("answers 50 clients at once on 10 sessions, each correctly", function()
    for s = 1, 10 do
      local _, p = pool:execute(("tag = 's%d'\nlog = []\nbusy = False"):format(s), { identifier = "load-" .. s })
      assert.are.equal("Success", p and p.status)
    end
    local client = http.client{ timeout = 180 }
    local fns = {}
    for i = 1, 50 do
      local s = (i - 1) % 10 + 1
      fns[i] = function()
        -- `busy` catches two executions of one session overlapping
        local code = ("assert not busy\nbusy = True\nimport time\ntime.sleep(0.05)\nlog.append(%d)\nbusy = False\n(tag, %d)"):format(i, i)
        local res = client:request{ method = "POST", url = pool:url("code/execute", { identifier = "load-" .. s }),
          headers = { Authorization = "Bearer " .. pool.token, ["Content-Type"] = "application/json" },
          body = cjson.encode{ properties = { codeInputType = "inline", executionType = "synchronous", code = code } } }
        local p = cjson.decode(res.body).properties
        return res.status .. " " .. p.status .. " " .. tostring(p.result)
      end
    end
    local results, errors = http.run(fns)
    client:close()
    assert.is_nil(errors)
    for i = 1, 50 do
      local s = (i - 1) % 10 + 1
      assert.are.equal(("200 Success ('s%d', %d)"):format(s, i), results[i])
    end
    for s = 1, 10 do
      local _, p = pool:execute("sorted(log)", { identifier = "load-" .. s })
      local want = {}
      for i = s, 50, 10 do want[#want + 1] = tostring(i) end
      assert.are.equal("[" .. table.concat(want, ", ") .. "]", p.result)
    end
  end)
end)
