-- host.cli — runs the real build/bin/sesh as a child process for the specs.
--
--   local cli = require "host.cli"
--   local r = cli.run{ "-e", "print(1)" }            -- { out, err, code }
--   cli.run({ "-" }, { stdin = "print(2)", env = { LUA_INIT = "x=1" } })

local util = require "support.util"

local cli = {}

local shell_quote = util.quote
cli.quote = shell_quote

local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  local pwd = io.popen("pwd"):read("l")
  return pwd .. "/" .. path
end

cli.sesh = absolute((os.getenv("SESH_BUILD") or "build") .. "/bin/sesh")

local tmp_root = os.getenv("SESH_TEST_TMP") or "/tmp"
local counter = 0

--- A fresh temporary directory of this test run.
function cli.tmpdir()
  counter = counter + 1
  local dir = ("%s/host-%d-%d"):format(tmp_root, os.time(), counter)
  assert(os.execute("mkdir -p " .. shell_quote(dir)))
  return dir
end

function cli.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

cli.read = util.read

--- Runs sesh with args; opts.stdin (text), opts.env (extra variables, false
--- to unset), opts.cwd, opts.program (another executable). Returns
--- { out = stdout, err = stderr, code = exit status }.
function cli.run(args, opts)
  opts = opts or {}
  local dir = cli.tmpdir()
  local parts = {}
  if opts.cwd then parts[#parts + 1] = "cd " .. shell_quote(opts.cwd) .. " &&" end
  parts[#parts + 1] = "env"
  local sets = {}
  for k, v in pairs(opts.env or {}) do
    if v == false then
      parts[#parts + 1] = "-u " .. k             -- env wants its options first
    else
      sets[#sets + 1] = shell_quote(k .. "=" .. v)
    end
  end
  table.move(sets, 1, #sets, #parts + 1, parts)
  parts[#parts + 1] = shell_quote(opts.program or cli.sesh)
  for _, a in ipairs(args) do parts[#parts + 1] = shell_quote(a) end
  local stdin = cli.write(dir .. "/stdin", opts.stdin or "")
  parts[#parts + 1] = "<" .. shell_quote(stdin)
  parts[#parts + 1] = ">" .. shell_quote(dir .. "/out")
  parts[#parts + 1] = "2>" .. shell_quote(dir .. "/err")
  local ok, how, code = os.execute(table.concat(parts, " "))
  if how == "signal" then code = 128 + code end
  return { out = cli.read(dir .. "/out"), err = cli.read(dir .. "/err"),
           code = ok and 0 or code }
end

return cli
