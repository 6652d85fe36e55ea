-- pipeline.lua — a data-analysis pipeline without an LLM, on real datasets
-- that scikit-learn ships (iris, wine, breast cancer). Each dataset gets its
-- own session, and the analyses run at once:
--
--   upload the settings -> load and clean -> summarize -> train and score a
--   model -> draw charts -> download the results -> one Markdown report
--
--   sesh scripts/pipeline.lua [options]
--     --out DIR            where results go (env SESH_OUTPUT_DIR; default ./pipeline-report)
--     --datasets a,b,...   which datasets (default iris,wine,breast_cancer)
--     --test-size F        held-out share of the rows (default 0.25)
--     --seed N             random seed of the split (default 42)
--     --jobs N             sessions at once (default: one per dataset)
--     --endpoint URL       the pool (default POOL_MANAGEMENT_ENDPOINT, else the local pool)
--     --token-file PATH    the pool's bearer token, with --endpoint
--
-- It writes DIR/report.md and, for each dataset, DIR/<dataset>/ with
-- data.csv (cleaned), summary.csv, metrics.json and three PNG figures.

local sessions = require "sessions"
local json = require "sessions.json"
local core = require "sessions.core"

local DATASETS = {
  iris = "Iris flowers: four measurements of 150 flowers of three species (Fisher, 1936).",
  wine = "Wines: thirteen chemical measurements of 178 wines from three cultivars (UCI).",
  breast_cancer = "Breast cancer (Wisconsin diagnostic): thirty features of cell nuclei " ..
                  "from 569 biopsies, malignant or benign (UCI).",
}

---------------------------------------------------------------------------
-- Options.

local function usage(msg)
  io.stderr:write("pipeline.lua: ", msg, "\n",
    "usage: sesh scripts/pipeline.lua [--out DIR] [--datasets iris,wine,breast_cancer]\n",
    "       [--test-size F] [--seed N] [--jobs N] [--endpoint URL --token-file PATH]\n")
  os.exit(2)
end

local function parse_args(argv)
  local o = {
    out = os.getenv("SESH_OUTPUT_DIR") or "pipeline-report",
    datasets = { "iris", "wine", "breast_cancer" },
    test_size = 0.25,
    seed = 42,
  }
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local function value()
      i = i + 1
      return argv[i] or usage(a .. " needs a value")
    end
    if a == "--out" then o.out = value()
    elseif a == "--datasets" then
      o.datasets = {}
      for name in value():gmatch("[^,%s]+") do
        if not DATASETS[name] then usage(("unknown dataset %q"):format(name)) end
        o.datasets[#o.datasets + 1] = name
      end
    elseif a == "--test-size" then
      o.test_size = tonumber(value())
      if not o.test_size or o.test_size <= 0 or o.test_size >= 1 then
        usage("--test-size must be between 0 and 1")
      end
    elseif a == "--seed" then o.seed = math.tointeger(tonumber(value())) or usage("--seed needs an integer")
    elseif a == "--jobs" then
      o.jobs = math.tointeger(tonumber(value()))
      if not o.jobs or o.jobs < 1 then usage("--jobs needs a positive integer") end
    elseif a == "--endpoint" then o.endpoint = value()
    elseif a == "--token-file" then o.token_file = value()
    elseif a == "-h" or a == "--help" then usage("runs the analyses and writes a report")
    else usage(("unknown argument %q"):format(a)) end
    i = i + 1
  end
  if #o.datasets == 0 then usage("no dataset named") end
  return o
end

---------------------------------------------------------------------------
-- The Python cells, run in order in each dataset's session. A cell's last
-- expression is its result; the JSON ones are decoded here.

local CELLS = {}

CELLS.load = [=[
import json, re
import numpy as np
import pandas as pd
from sklearn import datasets

with open("/mnt/data/settings.json") as f:
    settings = json.load(f)
bunch = getattr(datasets, "load_" + settings["dataset"])(as_frame=True)
raw = bunch.frame
len(raw)
]=]

-- Column names a person can type, exact duplicates and incomplete rows out,
-- class numbers given their names.
CELLS.clean = [=[
df = raw.copy()
df.columns = [re.sub(r"[^0-9a-z]+", "_", c.lower()).strip("_") for c in df.columns]
features = [c for c in df.columns if c != "target"]
rows_raw = len(df)
duplicates = int(df.duplicated().sum())
df = df.drop_duplicates()
missing = int(df.isna().any(axis=1).sum())
df = df.dropna().reset_index(drop=True)
labels = [str(n) for n in bunch.target_names]
df["target"] = df["target"].astype(int)
df["label"] = df["target"].map(dict(enumerate(labels)))
df.to_csv("/mnt/data/data.csv", index=False)
json.dumps({"rows_raw": rows_raw, "duplicates": duplicates, "missing": missing,
            "rows": len(df), "features": len(features)})
]=]

CELLS.summarize = [=[
from sklearn.feature_selection import f_classif

summary = df[features].describe().T[["mean", "std", "min", "max"]]
f_score, _ = f_classif(df[features], df["target"])
summary["f_score"] = f_score
summary = summary.sort_values("f_score", ascending=False).round(4)
summary.to_csv("/mnt/data/summary.csv", index_label="feature")
counts = df["label"].value_counts()
json.dumps({
    "classes": [[name, int(counts.get(name, 0))] for name in labels],
    "features": [[name] + [float(v) for v in row] for name, row in
                 zip(summary.index, summary[["mean", "std", "min", "max", "f_score"]].to_numpy())],
})
]=]

CELLS.train = [=[
from sklearn.model_selection import train_test_split, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, confusion_matrix

X, y = df[features].to_numpy(), df["target"].to_numpy()
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=settings["test_size"], random_state=settings["seed"], stratify=y)
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
cv = cross_val_score(model, X_train, y_train, cv=5)
model.fit(X_train, y_train)
predicted = model.predict(X_test)
metrics = {
    "dataset": settings["dataset"],
    "model": "StandardScaler + LogisticRegression",
    "test_size": settings["test_size"], "seed": settings["seed"],
    "train_rows": int(len(y_train)), "test_rows": int(len(y_test)),
    "accuracy": float(accuracy_score(y_test, predicted)),
    "f1_macro": float(f1_score(y_test, predicted, average="macro")),
    "cv_mean": float(cv.mean()), "cv_std": float(cv.std()),
    "labels": labels,
    "confusion": confusion_matrix(y_test, predicted).tolist(),
}
with open("/mnt/data/metrics.json", "w") as f:
    json.dump(metrics, f, indent=2)
json.dumps(metrics)
]=]

-- Each figure cell leaves its figure open: the session returns it as a PNG.
CELLS.fig_features = [=[
import matplotlib.pyplot as plt

best = list(summary.index[:2])
fig, ax = plt.subplots(figsize=(6, 4.5))
for name in labels:
    part = df[df["label"] == name]
    ax.scatter(part[best[0]], part[best[1]], label=name, s=18, alpha=0.75)
ax.set_xlabel(best[0])
ax.set_ylabel(best[1])
ax.set_title(settings["dataset"] + ": the two most telling features")
ax.legend()
fig.tight_layout()
]=]

-- Labels readable at the figure's size, and each cell's value written in it
-- while there is room (iris 4 features, wine 13; breast cancer's 30 get the
-- colours and a bigger canvas).
CELLS.fig_correlation = [=[
corr = df[features].corr()
n = len(features)
side = max(6.0, 0.32 * n + 3.0)
label_size = 11 if n <= 6 else 9 if n <= 15 else 7
fig, ax = plt.subplots(figsize=(side + 1.2, side))
im = ax.imshow(corr, cmap="coolwarm", vmin=-1, vmax=1)
ax.set_xticks(range(n))
ax.set_yticks(range(n))
ax.set_xticklabels(features, rotation=45 if n <= 15 else 90, ha="right" if n <= 15 else "center",
                   fontsize=label_size)
ax.set_yticklabels(features, fontsize=label_size)
if n <= 15:
    for i in range(n):
        for j in range(n):
            v = corr.iat[i, j]
            ax.text(j, i, "%.2f" % v, ha="center", va="center", fontsize=label_size - 1,
                    color="white" if abs(v) > 0.6 else "black")
fig.colorbar(im, ax=ax)
ax.set_title(settings["dataset"] + ": feature correlations")
fig.tight_layout()
]=]

CELLS.fig_confusion = [=[
from sklearn.metrics import ConfusionMatrixDisplay

fig, ax = plt.subplots(figsize=(5, 4.5))
ConfusionMatrixDisplay(confusion_matrix=np.array(metrics["confusion"]),
                       display_labels=labels).plot(ax=ax, colorbar=False)
ax.set_title("%s: test accuracy %.3f" % (settings["dataset"], metrics["accuracy"]))
fig.tight_layout()
]=]

local FIGURES = {
  { cell = "fig_features", file = "features.png", caption = "the two most telling features" },
  { cell = "fig_correlation", file = "correlation.png", caption = "feature correlations" },
  { cell = "fig_confusion", file = "confusion.png", caption = "confusion matrix on the test rows" },
}

---------------------------------------------------------------------------
-- One analysis, in its own session.

-- Folders this run made, so that a failed run takes away those it left empty.
local made = {}

local function mkdir(dir)
  if core.stat(dir) then return end
  local ok, why = core.mkdir(dir)
  if not ok then error(("cannot create the directory: %s"):format(why), 0) end
  made[#made + 1] = dir
end

local function remove_empty_made()
  for i = #made, 1, -1 do os.remove(made[i]) end     -- removes a folder only when empty
end

-- Run a cell; a Python failure stops the analysis with its traceback.
local function run(s, step)
  local r = s:execute(CELLS[step])
  if r.status ~= "Success" then
    -- The exception first, the traceback after it for whoever needs it.
    local last = ""
    for line in (r.stderr or ""):gmatch("[^\n]+") do
      if line:find("%S") then last = line end
    end
    error(("the %s step failed: %s\n%s"):format(step, last, r.stderr), 0)
  end
  return r
end

local function run_json(s, step)
  local r = run(s, step)
  local ok, v = pcall(json.decode, r.result)
  if not ok then
    error(("the %s step returned no JSON: %s"):format(step, tostring(r.result)), 0)
  end
  return v
end

local function analyze(dataset, opts)
  local s <close> = sessions.new{ endpoint = opts.endpoint, token_file = opts.token_file }
  local dir = opts.out .. "/" .. dataset
  local a = { dataset = dataset, dir = dataset }

  s:upload{ name = "settings.json", data = json.encode{
    dataset = dataset, test_size = opts.test_size, seed = opts.seed } }
  a.rows_loaded = run(s, "load").result
  a.cleaning = run_json(s, "clean")
  a.summary = run_json(s, "summarize")
  a.metrics = run_json(s, "train")

  a.figures = {}
  mkdir(opts.out)
  mkdir(dir)
  for _, fig in ipairs(FIGURES) do
    local r = run(s, fig.cell)
    if not sessions.is_image(r.result) then
      error(("the %s step drew no figure (result %s)"):format(fig.cell, tostring(r.result)), 0)
    end
    sessions.save_image(r.result, dir .. "/" .. fig.file)
    a.figures[#a.figures + 1] = { file = dataset .. "/" .. fig.file, caption = fig.caption }
  end

  for _, name in ipairs{ "data.csv", "summary.csv", "metrics.json" } do
    s:download(name, dir .. "/" .. name)
  end
  return a
end

---------------------------------------------------------------------------
-- The report.

local function fmt(x) return ("%.3f"):format(x) end

local function plural(n, noun, nouns)
  return ("%d %s"):format(n, n == 1 and noun or nouns or noun .. "s")
end

local function table_md(out, header, rows)
  out[#out + 1] = "| " .. table.concat(header, " | ") .. " |"
  local rule = {}
  for i = 1, #header do rule[i] = i == 1 and "---" or "---:" end
  out[#out + 1] = "| " .. table.concat(rule, " | ") .. " |"
  for _, row in ipairs(rows) do out[#out + 1] = "| " .. table.concat(row, " | ") .. " |" end
  out[#out + 1] = ""
end

local function report(results, opts, where)
  local out = {
    "# Pipeline report", "",
    ("%s ran in parallel sessions on %s. Each loaded a dataset that " ..
     "scikit-learn ships, cleaned it, summarized it, trained a model on %d %% of the rows " ..
     "and scored it on the other %d %% (split seed %d)."):format(
      plural(#results, "analysis", "analyses"), where,
      math.floor((1 - opts.test_size) * 100 + 0.5), math.floor(opts.test_size * 100 + 0.5), opts.seed),
    "",
  }
  local rows = {}
  for _, a in ipairs(results) do
    local m = a.metrics
    rows[#rows + 1] = { ("[%s](#%s)"):format(a.dataset, (a.dataset:gsub("_", "-"))),
      ("%d"):format(a.cleaning.rows), ("%d"):format(a.cleaning.features), ("%d"):format(#m.labels),
      fmt(m.accuracy), fmt(m.f1_macro), ("%s ± %s"):format(fmt(m.cv_mean), fmt(m.cv_std)) }
  end
  table_md(out, { "dataset", "rows", "features", "classes", "test accuracy", "macro F1",
                  "5-fold CV accuracy" }, rows)

  for _, a in ipairs(results) do
    local c, m = a.cleaning, a.metrics
    out[#out + 1] = "## " .. (a.dataset:gsub("_", " "))
    out[#out + 1] = ""
    out[#out + 1] = DATASETS[a.dataset]
    out[#out + 1] = ""
    out[#out + 1] = ("**Cleaning.** %d rows loaded; %s and %s removed; %d rows and %d " ..
                     "features remain."):format(c.rows_raw, plural(c.duplicates, "duplicate row"),
                     plural(c.missing, "incomplete row"), c.rows, c.features)
    out[#out + 1] = ""
    local classes = {}
    for _, cl in ipairs(a.summary.classes) do classes[#classes + 1] = ("%s %d"):format(cl[1], cl[2]) end
    out[#out + 1] = "**Classes.** " .. table.concat(classes, ", ") .. "."
    out[#out + 1] = ""
    out[#out + 1] = "**Features**, most telling first (ANOVA F-score against the class):"
    out[#out + 1] = ""
    local feats = {}
    for _, f in ipairs(a.summary.features) do
      feats[#feats + 1] = { f[1], fmt(f[2]), fmt(f[3]), fmt(f[4]), fmt(f[5]), ("%.1f"):format(f[6]) }
    end
    table_md(out, { "feature", "mean", "std", "min", "max", "F-score" }, feats)
    out[#out + 1] = ("**Model.** %s, trained on %d rows: test accuracy %s, macro F1 %s, " ..
                     "5-fold cross-validation accuracy %s ± %s on the training rows."):format(
                     m.model, m.train_rows, fmt(m.accuracy), fmt(m.f1_macro), fmt(m.cv_mean), fmt(m.cv_std))
    out[#out + 1] = ""
    for _, f in ipairs(a.figures) do
      out[#out + 1] = ("![%s: %s](%s)"):format(a.dataset, f.caption, f.file)
      out[#out + 1] = ""
    end
    out[#out + 1] = ("Files: [cleaned data](%s/data.csv), [summary](%s/summary.csv), " ..
                     "[metrics](%s/metrics.json)."):format(a.dir, a.dir, a.dir)
    out[#out + 1] = ""
  end
  return table.concat(out, "\n")
end

---------------------------------------------------------------------------

local opts = parse_args(arg or {})
local where = opts.endpoint and ("the pool at " .. opts.endpoint)
  or os.getenv("POOL_MANAGEMENT_ENDPOINT") and "the pool at POOL_MANAGEMENT_ENDPOINT"
  or "the local pool"
print(("pipeline: %s (%s) in parallel sessions on %s"):format(
  plural(#opts.datasets, "analysis", "analyses"), table.concat(opts.datasets, ", "), where))

local results, errs = sessions.parallel(opts.datasets, function(name)
  local a = analyze(name, opts)
  print(("pipeline: %-13s accuracy %.3f  macro F1 %.3f  (%d rows)"):format(
    name, a.metrics.accuracy, a.metrics.f1_macro, a.cleaning.rows))
  return a
end, { errors = "collect", limit = opts.jobs })

if errs then
  for i, name in ipairs(opts.datasets) do
    if errs[i] then io.stderr:write("pipeline: ", name, ": ", tostring(errs[i]), "\n") end
  end
  remove_empty_made()
  os.exit(1)
end

mkdir(opts.out)
local path = opts.out .. "/report.md"
local f = assert(io.open(path, "w"))
f:write(report(results, opts, where))
f:close()
print("pipeline: wrote " .. path)
