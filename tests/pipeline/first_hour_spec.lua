-- scripts/pipeline.lua as a new user meets it (issue 13): a pool given
-- without its token fails with a hint and leaves no output folder; the
-- correlation figure is readable (label sizes, values in its cells), checked
-- by running the script's own figure cell in a real session.

local json = require "sessions.json"
local script = require "pipeline.script"

local pool
setup(function() pool = require("support.pool").start{} end)
teardown(function() if pool then pool:stop() end end)

-- A cell of scripts/pipeline.lua, as the script sends it.
local function cell(name)
  local text = assert(script.read("scripts/pipeline.lua"))
  return (assert(text:match("\nCELLS%." .. name .. " = %[=%[\n(.-)%]=%]"), "no cell " .. name))
end

describe("pipeline.lua that fails", function()
  it("with --endpoint and no token says how to pass one, and leaves no output folder", function()
    local out = script.tmpdir("pipeline-notoken") .. "/report"
    local code, _, err = script.run("scripts/pipeline.lua",
      { "--out", out, "--datasets", "iris", "--endpoint", pool.endpoint },
      { SESH_AZ = "/nonexistent/az", SESH_TOKEN = false, SESH_TOKEN_FILE = false })
    assert.equal(1, code)
    assert.matches("pipeline: iris: sessions: sign in failed", err, 1, true)
    assert.matches("a pool on this machine wants the token it was started with", err, 1, true)
    assert.is_nil(script.read(out), "the output folder was made")
    assert.is_falsy(os.execute("test -e " .. script.quote(out)))
  end)

  it("at a step leaves no output folder it made", function()
    local out = script.tmpdir("pipeline-step") .. "/report"
    local code = script.run("scripts/pipeline.lua",
      { "--out", out, "--datasets", "iris", "--test-size", "0.99",
        "--endpoint", pool.endpoint, "--token-file", pool.token_file })
    assert.equal(1, code)
    assert.is_falsy(os.execute("test -e " .. script.quote(out)))
  end)
end)

describe("pipeline.lua's correlation figure", function()
  -- What the figure cell drew: its text in the cells, the labels' size.
  local function drawn(dataset)
    local s <close> = pool:session{}
    s:upload{ name = "settings.json", data = json.encode{ dataset = dataset, test_size = 0.25, seed = 42 } }
    for _, step in ipairs{ "load", "clean" } do s:execute(cell(step)):check() end
    s:execute("import matplotlib.pyplot as plt"):check()
    local r = s:execute(cell("fig_correlation") .. [[
import json as _json
print(_json.dumps({"values": [t.get_text() for t in ax.texts],
                   "labels": [l.get_fontsize() for l in ax.get_xticklabels() + ax.get_yticklabels()],
                   "n": len(features)}))
]]):check()
    assert.is_true(require("sessions").is_image(r.result))
    return json.decode(r.stdout)
  end

  it("writes each correlation in its cell where there is room, in labels one can read", function()
    local iris = drawn("iris")
    assert.equal(4, iris.n)
    assert.equal(16, #iris.values)
    assert.equal("1.00", iris.values[1])              -- a feature with itself
    for _, v in ipairs(iris.values) do assert.matches("^%-?%d%.%d%d$", v) end
    for _, size in ipairs(iris.labels) do assert.is_true(size >= 10, "label size " .. size) end
    local cancer = drawn("breast_cancer")               -- 30 features: colours only
    assert.equal(0, #cancer.values)
    for _, size in ipairs(cancer.labels) do assert.is_true(size >= 7, "label size " .. size) end
  end)
end)
