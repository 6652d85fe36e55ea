-- --python PATH: sessions on the user's own interpreter, a virtual
-- environment made here (python3 -m venv, Debian's python3-venv) with the
-- system's packages and one of its own (installed from a folder written
-- here: no network). Its prefix is bound read-only in each sandbox; an
-- interpreter without IPython, or none at all, is a clear start-up error.
local support = require "support.pool"
local util = require "support.util"
local cjson = require "cjson"
local PY = "/usr/bin/python3"
local root = support.sh("id -u"):match("^0") ~= nil

-- A directory sandboxes' users may enter (a root pool's run as uids of their own).
local function open_dir()
  local base = os.getenv("SESH_TEST_TMP") or os.getenv("TMPDIR") or "/tmp"
  local dir = (support.sh("mktemp -d " .. util.quote(base .. "/venv.XXXXXX")):gsub("%s+$", ""))
  os.execute("chmod 755 " .. util.quote(dir))
  return dir
end

local function run(cmd)
  local out = support.sh(cmd .. " 2>&1; echo \"rc=$?\"")
  assert(out:match("rc=0\n$"), cmd .. "\n" .. out)
end

-- sesh-pool with these arguments must fail to start: its stderr.
local function refused(args)
  local dir = support.tmpdir()
  local all = { "--listen", "127.0.0.1:0", "--token-file", dir .. "/token", "--state-dir", dir .. "/state" }
  for _, a in ipairs(args) do all[#all + 1] = a end
  local pid, out, err = support.spawn(all, dir)
  local line = support.wait_line(pid, out, err, 30)
  assert.is_nil(line)
  local text = support.read(err) or ""
  os.execute("rm -rf " .. util.quote(dir))
  return text
end

describe("sesh-pool --python", function()
  local dir, venv, bare
  setup(function()
    dir = open_dir()
    venv, bare = dir .. "/venv", dir .. "/bare"
    run(("%s -m venv --system-site-packages %s"):format(PY, util.quote(venv)))
    os.execute("mkdir -p " .. util.quote(dir .. "/pkg/sesh_probe_pkg"))
    util.write(dir .. "/pkg/sesh_probe_pkg/__init__.py", "VALUE = 42\n")
    util.write(dir .. "/pkg/pyproject.toml", '[build-system]\nrequires = ["setuptools"]\n' ..
      'build-backend = "setuptools.build_meta"\n[project]\nname = "sesh-probe-pkg"\nversion = "1.2.3"\n')
    run(("%s/bin/python -m pip install -q --no-index --no-build-isolation %s"):format(
      util.quote(venv), util.quote(dir .. "/pkg")))
    run(("%s -m venv --without-pip %s"):format(PY, util.quote(bare)))
  end)
  teardown(function() os.execute("rm -rf " .. util.quote(dir)) end)

  local function check_venv(pool)
    local _, p = pool:execute("import sys, json, numpy, sesh_probe_pkg\n" ..
                              "json.dumps([sys.prefix, sys.executable, sesh_probe_pkg.VALUE])",
                              { identifier = "venv-session" })
    assert.are.equal("Success", p.status, p.stderr)
    assert.are.same({ venv, venv .. "/bin/python", 42 }, cjson.decode(p.result))
    -- bound read-only: the code cannot change the environment
    _, p = pool:execute("import sys\ntry:\n    open(sys.prefix + '/planted', 'w')\nexcept OSError as e:\n" ..
                        "    print(e.errno)", { identifier = "venv-session" })
    assert.are.equal("30\n", p.stdout)                -- EROFS
    local md = pool:request{ path = "metadata", api_version = "2025-02-02-preview", identifier = false }
    assert.are.equal(200, md.status)
    local found = {}
    for _, pkg in ipairs(md.json.preInstalledPackages) do found[pkg.name] = pkg.version end
    assert.are.equal("1.2.3", found["sesh-probe-pkg"])
    assert.is_not_nil(found.numpy)                    -- the system's, through --system-site-packages
    assert.matches("sessions run " .. venv:gsub("%p", "%%%0") .. "/bin/python %(Python 3%.", pool:log())
    -- the sessions were forked from a fork server running the venv's python,
    -- their root binding the venv as bwrap's does (the checks above)
    local fs = pool:request{ path = "health", query = {} }.json.forkServer
    assert.are.equal("ready", fs.state, fs.reason)
    assert.is_true(fs.sandboxes >= 1)
    assert.is_nil(pool:log():find("starts with bwrap", 1, true), pool:log())
  end

  it("runs sessions in a virtual environment, with its own packages and the system's", function()
    local pool = support.start{ args = { "--python", venv .. "/bin/python" } }
    local ok, e = pcall(check_venv, pool)
    pool:stop(); pool:cleanup()
    assert(ok, e)
  end)

  it("runs them in a pool that is not root as well", function()
    if not root then return end
    local pool = support.start{ args = { "--python", venv .. "/bin/python" }, user = 65534 }
    local ok, e = pcall(check_venv, pool)
    pool:stop(); pool:cleanup()
    assert(ok, e)
  end)

  it("refuses to start on an interpreter without IPython, saying so", function()
    local text = refused{ "--python", bare .. "/bin/python" }
    assert.matches("--python " .. bare:gsub("%p", "%%%0") .. "/bin/python", text)
    assert.matches("has no IPython", text, 1, true)
    assert.matches("--system-site-packages", text, 1, true)
  end)

  it("refuses to start on a path that is no usable Python", function()
    local text = refused{ "--python", dir .. "/missing/python" }
    assert.matches("missing/python: No such file or directory", text, 1, true)
    local fake = util.write(dir .. "/fake-python", "#!/bin/sh\necho 'not a python'\nexit 3\n")
    os.execute("chmod 755 " .. util.quote(fake))
    text = refused{ "--python", fake }
    assert.matches("is not a Python the pool can use (exit status 3: not a python)", text, 1, true)
    text = refused{ "--python", dir }
    assert.matches("not a file", text, 1, true)
  end)

  it("refuses, in a root pool, an interpreter the sandboxes' users cannot run", function()
    if not root then return end
    local closed = dir .. "/closed"
    os.execute(("mkdir -m 700 %s && cp -a %s %s/"):format(util.quote(closed), util.quote(bare), util.quote(closed)))
    local text = refused{ "--python", closed .. "/bare/bin/python" }
    assert.matches("cannot be run: Permission denied", text, 1, true)
    assert.matches("readable and executable by all", text, 1, true)
  end)
end)
