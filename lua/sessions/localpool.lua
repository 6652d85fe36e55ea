-- sessions.localpool — find this user's local pool, or start one.
--
-- State directory: $XDG_RUNTIME_DIR/sesh, else /tmp/sesh-<uid>; 0700 and ours
-- (DESIGN.md "The local pool").  It holds pool.sock, token, pool.pid,
-- pool.log and lock.  When nothing answers on pool.sock we take the lock
-- (core.lock on DIR/lock), look again (another script may have started one
-- while we waited), and only then start
--
--   sesh-pool --socket DIR/pool.sock --token-file DIR/token --idle-exit 300 --daemon
--
-- so two scripts starting at once start one pool ($SESH_POOL_IDLE_EXIT
-- overrides the 300 s), followed by the words of $SESH_POOL_ARGS (the pool's
-- other options, e.g. --max-upload; kept in pool.args to tell a running pool
-- started with others); --daemon returns once the pool listens.  The binary is
-- $SESH_POOL, else sesh-pool next to the sesh executable, else sesh-pool on
-- PATH.  Everything goes through sessions.core's system calls: no shell.

local errors = require "sessions.errors"
local core = require "sessions.core"
local log = require "sessions.log"

local localpool = {}

localpool.IDLE_EXIT = 300
localpool.START_TIMEOUT = 30      -- seconds to wait for the lock and the pool

local function host() return package.loaded["sessions.host"] end

local function fail(message)
  errors.raise{ kind = "pool", op = "local pool", message = message }
end

local function exists(path)
  local _, _, name = core.stat(path)
  return name ~= "ENOENT" and name ~= "ENOTDIR"    -- EACCES: it is there
end

local function executable(path)
  local st = core.stat(path)
  return st ~= nil and st.type == "file" and st.mode & 73 ~= 0   -- 0111
end

function localpool.state_dir(getenv)
  getenv = getenv or os.getenv
  local xdg = getenv("XDG_RUNTIME_DIR")
  if xdg and xdg ~= "" then return xdg .. "/sesh" end
  return "/tmp/sesh-" .. tostring(core.getuid())
end

-- Create the directory 0700 if needed; refuse one we do not own or that
-- others can open (someone else could plant a socket or read the token).
function localpool.ensure_dir(dir)
  local ok, why = core.mkdir(dir, 448)                         -- 0700
  if not ok then fail("cannot create the state directory " .. dir .. " (" .. why .. ")") end
  local st = core.stat(dir)
  if not st or st.type ~= "directory" then fail("cannot create the state directory " .. dir) end
  local owner, mode, me = st.uid, st.mode & 4095, core.getuid()
  if owner ~= me then
    fail(("the state directory %s belongs to uid %s, not to you (uid %s): refusing to use it"):format(
      dir, tostring(owner), tostring(me)))
  end
  if mode & 63 ~= 0 then
    fail(("the state directory %s is open to others (mode %o): make it 0700 or remove it"):format(dir, mode))
  end
  return dir
end

function localpool.find_binary(getenv)
  getenv = getenv or os.getenv
  local env = getenv("SESH_POOL")
  if env and env ~= "" then return env end
  local h = host()
  if h and h.exe_dir then
    local p = h.exe_dir .. "/sesh-pool"
    if exists(p) then return p end
  end
  -- loaded from stock lua5.4: sessions.so lives in <prefix>/lib/lua/5.4/
  local so = package.searchpath("sessions", package.cpath)
  local prefix = so and so:match("^(.*)/lib/lua/5%.4/[^/]+$")
  if prefix and exists(prefix .. "/bin/sesh-pool") then return prefix .. "/bin/sesh-pool" end
  for dir in (os.getenv("PATH") or ""):gmatch("[^:]+") do
    if executable(dir .. "/sesh-pool") then return dir .. "/sesh-pool" end
  end
  fail("cannot find sesh-pool: set SESH_POOL, install it next to sesh, or put it on PATH")
end

local function read_token(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local t = f:read("a"):gsub("%s+$", ""):gsub("^%s+", "")
  f:close()
  return t ~= "" and t or nil
end

-- Does a pool answer on this socket?  GET /health creates no session; any
-- HTTP answer counts, and a refused token is said plainly.
local function probe(socket, token)
  if not exists(socket) then return false end
  local http = require "sessions.http"
  local c = http.client{ unix_socket = socket, connect_timeout = 2, timeout = 5 }
  local ok, res = pcall(c.request, c, {
    method = "GET", url = "http://localhost/health",
    headers = { Authorization = "Bearer " .. (token or "") },
  })
  c:close()
  if not ok then return false end
  if res.status == 401 then return "refused" end
  return true
end

local function write_file(path, text)
  local f = io.open(path, "wb")
  if f then f:write(text); f:close() end
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- A pool that already runs keeps the options it was started with: say so
-- when SESH_POOL_ARGS asks for others.
local function check_args(dir, getenv)
  local ok, want = pcall(localpool.pool_args, getenv)
  if not ok then return end
  local had = read_file(dir .. "/pool.args")
  if had ~= nil and had ~= table.concat(want, "\n") then
    log("warn", ("sessions: the local pool was started with other options than SESH_POOL_ARGS " ..
        "(%s); they apply to the next pool it starts (stop this one: kill $(cat %s/pool.pid))"):format(
        had == "" and "none" or had:gsub("\n", " "), dir))
  end
end

local function tail(path, n)
  local f = io.open(path, "r")
  if not f then return "" end
  local lines = {}
  for line in f:lines() do
    lines[#lines + 1] = line
    if #lines > n then table.remove(lines, 1) end
  end
  f:close()
  return table.concat(lines, " | ")
end

-- Seconds without a session before a pool we start exits: 300, or
-- $SESH_POOL_IDLE_EXIT (0: never).
function localpool.idle_exit(opts)
  if opts.idle_exit then return math.floor(opts.idle_exit) end
  local env = tonumber((opts.getenv or os.getenv)("SESH_POOL_IDLE_EXIT") or "")
  if env and env >= 0 then return math.floor(env) end
  return localpool.IDLE_EXIT
end

-- The words of $SESH_POOL_ARGS: split at white space, '...' and "..." keep
-- theirs. Options the module sets itself are refused: they would cut it off
-- from the pool it starts.
local OWN_OPTIONS = { ["--socket"] = true, ["--token-file"] = true, ["--daemon"] = true,
                      ["--listen"] = true, ["--mcp-stdio"] = true, ["--pid-file"] = true,
                      ["--log-file"] = true, ["--help"] = true }

function localpool.pool_args(getenv)
  local text = (getenv or os.getenv)("SESH_POOL_ARGS") or ""
  local words, pos = {}, 1
  while true do
    pos = text:find("%S", pos)
    if not pos then break end
    local word = {}
    while pos <= #text and not text:sub(pos, pos):find("%s") do
      local c = text:sub(pos, pos)
      if c == "'" or c == '"' then
        local close = text:find(c, pos + 1, true)
        if not close then fail("SESH_POOL_ARGS has an unclosed " .. c) end
        word[#word + 1] = text:sub(pos + 1, close - 1)
        pos = close + 1
      else
        word[#word + 1] = c
        pos = pos + 1
      end
    end
    words[#words + 1] = table.concat(word)
  end
  for _, w in ipairs(words) do
    local name = w:match("^(%-%-[^=]+)")
    if name and OWN_OPTIONS[name] then
      fail("SESH_POOL_ARGS may not hold " .. name .. ": the module sets it for the pool it starts")
    end
  end
  return words
end

-- Starts the pool under the lock, unless one answers by then: whoever waited
-- for the lock finds the pool the holder started.
local function start(dir, opts, ready)
  local bin = opts.binary or localpool.find_binary(opts.getenv)
  local sock, tok, logfile = dir .. "/pool.sock", dir .. "/token", dir .. "/pool.log"
  local lock <close>, why = core.lock(dir .. "/lock", localpool.START_TIMEOUT)
  if not lock then fail(("could not start %s: %s"):format(bin, why)) end
  if ready() then return end
  os.remove(sock)                    -- a dead pool's socket
  local extra = localpool.pool_args(opts.getenv)
  local argv = { bin, "--socket", sock, "--token-file", tok,
                 "--idle-exit", tostring(localpool.idle_exit(opts)), "--daemon" }
  table.move(extra, 1, #extra, #argv + 1, argv)
  log("info", "sessions: starting the local pool: " .. table.concat(argv, " "))
  local started = core.monotonic()
  local pid, err = core.spawn(argv, { stdout = logfile, stderr = logfile })
  if not pid then fail("could not start " .. err:gsub("^spawn ", "")) end
  local how, code = core.wait(pid)   -- --daemon: the parent exits once the pool listens
  if how == "exit" and code == 0 then
    write_file(dir .. "/pool.args", table.concat(extra, "\n"))
    log("debug", ("sessions: the local pool listens on %s (started in %.0f ms)"):format(
        sock, (core.monotonic() - started) * 1000))
  end
  if how ~= "exit" or code ~= 0 then
    local said = tail(logfile, 3)
    fail(("could not start %s (%s %s)%s"):format(bin, how == "exit" and "exit status" or how,
      tostring(code), said ~= "" and (": " .. said) or ""))
  end
end

-- -> { socket = path, token = string, endpoint = "http://localhost", dir = path }
function localpool.connect(opts)
  opts = opts or {}
  local dir = localpool.ensure_dir(opts.dir or localpool.state_dir(opts.getenv))
  local sock, tokfile = dir .. "/pool.sock", dir .. "/token"
  local function ready()          -- whether a pool answers, and the token to use
    local token = read_token(tokfile)
    local alive = probe(sock, token)
    if alive == "refused" then
      fail("the local pool on " .. sock .. " refused the token in " .. tokfile)
    end
    return alive, token
  end
  local alive, token = ready()
  if alive then
    log("debug", "sessions: the local pool answers on " .. sock)
    check_args(dir, opts.getenv)
  else
    start(dir, opts, ready)
    local deadline = core.monotonic() + localpool.START_TIMEOUT
    local wait = 0.02
    repeat
      alive, token = ready()
      if alive then break end
      core.sleep(wait)
      wait = math.min(wait * 2, 0.5)
    until core.monotonic() > deadline
    if not alive then
      fail("the local pool did not answer on " .. sock .. " (see " .. dir .. "/pool.log: " .. tail(dir .. "/pool.log", 3) .. ")")
    end
  end
  if not token then fail("the local pool's token file " .. tokfile .. " is missing or empty") end
  return { socket = sock, token = token, endpoint = "http://localhost", dir = dir }
end

return localpool
