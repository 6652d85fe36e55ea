-- agent/cli.lua — the command line the agent scripts share
-- (scripts/agent.lua, data_analyst.lua, code_agent.lua):
--
--   local o, positional = require("agent.cli").parse(arg, { max_steps = 15 }, usage, purpose)
--
--   --max-steps N        model calls before giving up (o.max_steps; defaults.max_steps)
--   --quiet, -q          print only the answer (o.quiet)
--   --endpoint URL       the pool (o.endpoint)
--   --token-file PATH    its bearer token (o.token_file)
--   --out DIR            where results go (o.out), for scripts whose defaults have `out`
--   --help, -h           usage(purpose)
--
-- Anything else beginning with "--" is usage("unknown option ..."); the
-- other words are returned in order. usage(message) must not return (it
-- exits with status 2).

local cli = {}

function cli.parse(argv, defaults, usage, purpose)
  local o, positional = {}, {}
  for k, v in pairs(defaults) do o[k] = v end
  argv = argv or {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local function value() i = i + 1; return argv[i] or usage(a .. " needs a value") end
    if a == "--max-steps" then
      o.max_steps = math.tointeger(tonumber(value()))
      if not o.max_steps or o.max_steps < 1 then usage("--max-steps needs a positive integer") end
    elseif a == "--out" and defaults.out ~= nil then o.out = value()
    elseif a == "--quiet" or a == "-q" then o.quiet = true
    elseif a == "--endpoint" then o.endpoint = value()
    elseif a == "--token-file" then o.token_file = value()
    elseif a == "-h" or a == "--help" then usage(purpose)
    elseif a:sub(1, 2) == "--" then usage(("unknown option %q"):format(a))
    else positional[#positional + 1] = a end
    i = i + 1
  end
  return o, positional
end

return cli
