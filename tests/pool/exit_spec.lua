-- exit(), quit() and a bare `exit` in a cell: IPython's shell would ask to
-- stop; a session's cell ends there instead, cleanly (Success, no
-- traceback), and the session keeps its state and files for the next one.
local support = require "support.pool"

describe("sesh-pool and exit() in a cell", function()
  local pool
  setup(function() pool = support.start{} end)
  teardown(function() pool:stop(); pool:cleanup() end)

  local function run(code, id)
    local res, p = pool:execute(code, { identifier = id or "exit-session" })
    assert.are.equal(200, res.status)
    return p
  end

  it("ends the cell where exit() is, as a success, and keeps the session's state", function()
    run("x = 1")
    local p = run("print('before')\nexit()\nprint('after')\nx = 2")
    assert.are.equal("Success", p.status, p.stderr)
    assert.are.equal("before\n", p.stdout)
    assert.are.equal("", p.stderr)
    assert.are.equal("", p.result)
    p = run("x")
    assert.are.equal(1, p.result)
  end)

  for _, code in ipairs{ "exit()", "quit()", "exit", "quit" } do
    it("takes `" .. code .. "` alone", function()
      local p = run("y = 'kept'")
      p = run(code)
      assert.are.equal("Success", p.status, p.stderr)
      assert.are.equal("", p.stderr)
      p = run("y")
      assert.are.equal("kept", p.result)
    end)
  end

  it("ends the cell from inside a function, past `except Exception`", function()
    local p = run("def stop():\n    try:\n        quit()\n    except Exception:\n        print('caught')\n" ..
                  "stop()\nz = 3")
    assert.are.equal("Success", p.status, p.stderr)
    assert.are.equal("", p.stdout)
    p = run("'z' in dir()")
    assert.is_false(p.result)
  end)

  it("is Succeeded in the second generation, and the next execution runs", function()
    local res = pool:request{ method = "POST", path = "executions", identifier = "exit-gen2",
                              api_version = "2025-10-02-preview",
                              json = { code = "print(1)\nexit()", timeoutInSeconds = 60 } }
    assert.are.equal(200, res.status)
    assert.are.equal("Succeeded", res.json.status)
    assert.are.equal("1\n", res.json.result.stdout)
    res = pool:request{ method = "POST", path = "executions", identifier = "exit-gen2",
                        api_version = "2025-10-02-preview", json = { code = "6 * 7", timeoutInSeconds = 60 } }
    assert.are.equal(42, res.json.result.executionResult)
  end)

  it("leaves sys.exit() as IPython has it: a failure that says so", function()
    local p = run("import sys\nsys.exit(3)")
    assert.are.equal("Failure", p.status)
    assert.matches("SystemExit: 3", p.stderr)
  end)
end)
