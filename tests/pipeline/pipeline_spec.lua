-- scripts/pipeline.lua end to end: the real host runs it against a real
-- sesh-pool (sandboxed Python with pandas and scikit-learn); its report,
-- figures, downloaded data and model scores are checked.

local cjson = require "cjson"
local script = require "pipeline.script"

-- Test accuracy a scaled logistic regression reaches on each dataset's
-- stratified 25 % split: well above chance, and never perfect by accident of
-- the code (iris has a known overlap of two species).
local EXPECTED = {
  iris = { rows = 149, features = 4, classes = 3, min = 0.85, max = 1.0 },
  wine = { rows = 178, features = 13, classes = 3, min = 0.90, max = 1.0 },
  breast_cancer = { rows = 569, features = 30, classes = 2, min = 0.93, max = 1.0 },
}

local function count_lines(s)
  local n = 0
  for _ in s:gmatch("[^\n]+") do n = n + 1 end
  return n
end

describe("pipeline.lua", function()
  local pool, out, code, stdout, stderr

  setup(function()
    pool = require("support.pool").start{}
    out = script.tmpdir("pipeline")
    code, stdout, stderr = script.run("scripts/pipeline.lua",
      { "--out", out, "--endpoint", pool.endpoint, "--token-file", pool.token_file },
      { POOL_MANAGEMENT_ENDPOINT = false })
  end)
  teardown(function() if pool then pool:stop() end end)

  it("runs the three analyses and exits 0", function()
    assert.equal(0, code, stderr)
    assert.matches("3 analyses %(iris, wine, breast_cancer%) in parallel sessions", stdout)
    for name in pairs(EXPECTED) do
      assert.matches("pipeline: " .. name .. " +accuracy [01]%.%d%d%d", stdout)
    end
    assert.matches("wrote " .. out .. "/report.md", stdout, 1, true)
  end)

  for name, want in pairs(EXPECTED) do
    describe(name, function()
      it("scores the model within the expected range", function()
        local m = cjson.decode((assert(script.read(out .. "/" .. name .. "/metrics.json"))))
        assert.equal(name, m.dataset)
        assert.is_true(m.accuracy >= want.min and m.accuracy <= want.max,
                       ("accuracy %s outside [%s, %s]"):format(m.accuracy, want.min, want.max))
        assert.is_true(m.f1_macro >= want.min - 0.05 and m.f1_macro <= 1.0)
        assert.is_true(m.cv_mean >= want.min - 0.05 and m.cv_mean <= 1.0)
        assert.equal(want.classes, #m.labels)
        assert.equal(want.rows, m.train_rows + m.test_rows)
        -- The confusion matrix counts every held-out row once.
        local total, right = 0, 0
        for i, row in ipairs(m.confusion) do
          for j, n in ipairs(row) do
            total = total + n
            if i == j then right = right + n end
          end
        end
        assert.equal(m.test_rows, total)
        assert.near(m.accuracy, right / total, 1e-9)
      end)

      it("downloads the cleaned data and the summary", function()
        local data = assert(script.read(out .. "/" .. name .. "/data.csv"))
        local header = data:match("^[^\n]+")
        assert.matches(",target,label$", header)
        assert.equal(want.rows + 1, count_lines(data))
        local summary = assert(script.read(out .. "/" .. name .. "/summary.csv"))
        assert.equal("feature,mean,std,min,max,f_score", summary:match("^[^\n]+"))
        assert.equal(want.features + 1, count_lines(summary))
      end)

      it("saves three figures as valid PNGs", function()
        for _, file in ipairs{ "features.png", "correlation.png", "confusion.png" } do
          local info, why = script.png_info(out .. "/" .. name .. "/" .. file)
          assert.is_table(info, file .. ": " .. tostring(why))
          assert.is_true(info.width >= 200 and info.height >= 200, file .. " is too small")
        end
      end)
    end)
  end

  it("stops with the failing step and Python's traceback, and writes no report", function()
    local bad_out = script.tmpdir("pipeline-bad")
    local rc, _, err = script.run("scripts/pipeline.lua",
      { "--out", bad_out, "--datasets", "iris", "--test-size", "0.99", "--jobs", "1",
        "--endpoint", pool.endpoint, "--token-file", pool.token_file })
    assert.equal(1, rc)
    assert.matches("pipeline: iris: the train step failed: ValueError: The train_size = 1 " ..
                   "should be greater or equal to the number of classes = 3\n", err, 1, true)
    assert.matches("Traceback", err)
    assert.is_nil(script.read(bad_out .. "/report.md"))
  end)

  it("writes a Markdown report that links every figure and file it names", function()
    local md = assert(script.read(out .. "/report.md"))
    assert.matches("^# Pipeline report\n", md)
    assert.matches("| dataset | rows | features | classes | test accuracy |", md, 1, true)
    assert.matches("**Cleaning.** 150 rows loaded; 1 duplicate row and 0 incomplete rows " ..
                  "removed; 149 rows and 4 features remain.", md, 1, true)
    local links = 0
    for target in md:gmatch("%]%(([^)#]+)%)") do
      links = links + 1
      assert.is_truthy(script.read(out .. "/" .. target), "the report links a missing file: " .. target)
    end
    assert.equal(3 * (3 + 3), links)      -- per dataset: 3 figures and 3 files
    local images = 0
    for _ in md:gmatch("!%[[^%]]*%]%([^)]+%.png%)") do images = images + 1 end
    assert.equal(9, images)
  end)
end)

describe("pipeline.lua options", function()
  it("refuses an unknown dataset before touching a pool", function()
    local code, _, err = script.run("scripts/pipeline.lua", { "--datasets", "iris,nope" })
    assert.equal(2, code)
    assert.matches('unknown dataset "nope"', err, 1, true)
  end)

  it("refuses a test size outside (0, 1)", function()
    local code, _, err = script.run("scripts/pipeline.lua", { "--test-size", "1.5" })
    assert.equal(2, code)
    assert.matches("--test-size must be between 0 and 1", err, 1, true)
  end)
end)
