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
-- overrides the 300 s); --daemon returns once the pool listens.  The binary is
-- $SESH_POOL, else sesh-pool next to the sesh executable, else sesh-pool on
-- PATH.  Everything goes through sessions.core's system calls: no shell.

local errors = require "sessions.errors"
local core = require "sessions.core"

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

-- Starts the pool under the lock, unless one answers by then: whoever waited
-- for the lock finds the pool the holder started.
local function start(dir, opts, ready)
  local bin = opts.binary or localpool.find_binary(opts.getenv)
  local sock, tok, log = dir .. "/pool.sock", dir .. "/token", dir .. "/pool.log"
  local lock <close>, why = core.lock(dir .. "/lock", localpool.START_TIMEOUT)
  if not lock then fail(("could not start %s: %s"):format(bin, why)) end
  if ready() then return end
  os.remove(sock)                    -- a dead pool's socket
  local pid, err = core.spawn({ bin, "--socket", sock, "--token-file", tok,
                                "--idle-exit", tostring(localpool.idle_exit(opts)), "--daemon" },
                              { stdout = log, stderr = log })
  if not pid then fail("could not start " .. err:gsub("^spawn ", "")) end
  local how, code = core.wait(pid)   -- --daemon: the parent exits once the pool listens
  if how ~= "exit" or code ~= 0 then
    local said = tail(log, 3)
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
  if not alive then
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
