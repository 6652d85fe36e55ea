-- sessions.localpool — find this user's local pool, or start one.
--
-- State directory: $XDG_RUNTIME_DIR/sesh, else /tmp/sesh-<uid>; 0700 and ours
-- (DESIGN.md "The local pool").  It holds pool.sock, token, pool.pid,
-- pool.log and lock.  When nothing answers on pool.sock we start
--
--   sesh-pool --socket DIR/pool.sock --token-file DIR/token --idle-exit 300 --daemon
--
-- under flock(1) on DIR/lock, so two scripts starting at once start one pool
-- ($SESH_POOL_IDLE_EXIT overrides the 300 s);
-- --daemon returns once the pool listens.  The binary is $SESH_POOL, else
-- sesh-pool next to the sesh executable, else sesh-pool on PATH.

local errors = require "sessions.errors"

local localpool = {}

localpool.IDLE_EXIT = 300
localpool.START_TIMEOUT = 30      -- seconds to wait for the lock and the pool

local function host() return package.loaded["sessions.host"] end
local function core() local ok, c = pcall(require, "sessions.core"); return ok and c or {} end

local function fail(message)
  errors.raise{ kind = "pool", op = "local pool", message = message }
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function capture(cmd)
  local p = io.popen(cmd, "r")
  if not p then return nil end
  local out = p:read("a")
  local ok, _, rc = p:close()
  return out, ok and 0 or rc
end

local function exists(path)
  local ok, _, code = os.rename(path, path)
  return ok or code == 13   -- EACCES: it is there
end

local function sleep(s)
  local c = core()
  if c.sleep then c.sleep(s) else os.execute("sleep " .. s) end
end

local function uid()
  local c = core()
  if c.getuid then return c.getuid() end
  local out = capture("id -u")
  return tonumber(out and out:match("%d+"))
end

-- Owner uid and permission bits of a path (nil when it does not exist).
local function stat(path)
  local c = core()
  if c.stat then
    local st = c.stat(path)
    if st then return st.uid, st.mode & 4095 end
    return nil
  end
  local out = capture("stat -c '%u %a' " .. q(path) .. " 2>/dev/null")
  local u, mode = (out or ""):match("^(%d+) ([0-7]+)")
  if not u then return nil end
  return tonumber(u), tonumber(mode, 8)
end

function localpool.state_dir(getenv)
  getenv = getenv or os.getenv
  local xdg = getenv("XDG_RUNTIME_DIR")
  if xdg and xdg ~= "" then return xdg .. "/sesh" end
  return "/tmp/sesh-" .. tostring(uid())
end

-- Create the directory 0700 if needed; refuse one we do not own or that
-- others can open (someone else could plant a socket or read the token).
function localpool.ensure_dir(dir)
  if not stat(dir) then
    local _, rc = capture("umask 077 && mkdir -p " .. q(dir) .. " 2>&1")
    if rc ~= 0 or not stat(dir) then fail("cannot create the state directory " .. dir) end
  end
  local owner, mode = stat(dir)
  local me = uid()
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
  local out = capture("command -v sesh-pool 2>/dev/null")
  local p = out and out:match("^%s*(.-)%s*$")
  if p and p ~= "" then return p end
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

local START_SCRIPT = [[
sock=$1 tok=$2 log=$3 bin=$4 idle=$5
if [ -S "$sock" ]; then   # a pool started while we waited for the lock?
  command -v python3 >/dev/null 2>&1 || exit 0
  python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' "$sock" 2>/dev/null && exit 0
fi
rm -f "$sock"
exec "$bin" --socket "$sock" --token-file "$tok" --idle-exit "$idle" --daemon </dev/null >>"$log" 2>&1
]]

-- Seconds without a session before a pool we start exits: 300, or
-- $SESH_POOL_IDLE_EXIT (0: never).
function localpool.idle_exit(opts)
  if opts.idle_exit then return math.floor(opts.idle_exit) end
  local env = tonumber((opts.getenv or os.getenv)("SESH_POOL_IDLE_EXIT") or "")
  if env and env >= 0 then return math.floor(env) end
  return localpool.IDLE_EXIT
end

local function start(dir, opts)
  local bin = opts.binary or localpool.find_binary(opts.getenv)
  local sock, tok, log = dir .. "/pool.sock", dir .. "/token", dir .. "/pool.log"
  local cmd = ("flock -o -w %d %s sh -c %s sesh-start %s %s %s %s %d 2>&1"):format(
    localpool.START_TIMEOUT, q(dir .. "/lock"), q(START_SCRIPT),
    q(sock), q(tok), q(log), q(bin), localpool.idle_exit(opts))
  local out, rc = capture(cmd)
  if rc ~= 0 then
    local why = tail(log, 3)
    if why == "" then why = (out or ""):gsub("%s+$", "") end
    fail(("could not start %s (exit status %s)%s"):format(bin, tostring(rc),
      why ~= "" and (": " .. why) or ""))
  end
end

-- -> { socket = path, token = string, endpoint = "http://localhost", dir = path }
function localpool.connect(opts)
  opts = opts or {}
  local dir = localpool.ensure_dir(opts.dir or localpool.state_dir(opts.getenv))
  local sock, tokfile = dir .. "/pool.sock", dir .. "/token"
  local function ready()
    local token = read_token(tokfile)
    local alive = probe(sock, token)
    if alive == "refused" then
      fail("the local pool on " .. sock .. " refused the token in " .. tokfile)
    end
    return alive and token, token
  end
  local ok, token = ready()
  if not ok then
    start(dir, opts)
    local deadline = os.time() + localpool.START_TIMEOUT
    local wait = 0.02
    repeat
      ok, token = ready()
      if ok then break end
      sleep(wait)
      wait = math.min(wait * 2, 0.5)
    until os.time() > deadline
    if not ok then
      fail("the local pool did not answer on " .. sock .. " (see " .. dir .. "/pool.log: " .. tail(dir .. "/pool.log", 3) .. ")")
    end
  end
  if not token then fail("the local pool's token file " .. tokfile .. " is missing or empty") end
  return { socket = sock, token = token, endpoint = "http://localhost", dir = dir }
end

return localpool
