-- support/tls.lua — a test CA, a server certificate it signs, and an https
-- stand-in in front of a plain-HTTP server (tests/support/tls_front.py).
--
--   local tls = require "support.tls"
--   local ca = tls.make_ca(dir)     -- { ca = "ca.pem", cert = "server.pem", key = "server.key" }
--                                   -- (the server's names: IP 127.0.0.1 and localhost)
--   local front = tls.front{ cert = ca.cert, key = ca.key, to = "127.0.0.1:8000" }
--   front.url                       -- "https://127.0.0.1:PORT"
--   front:stop()
local util = require "support.util"

local M = {}
local q = util.quote

local function run(cmd)
  local ok = os.execute(cmd .. " >/dev/null 2>&1")
  assert(ok, "failed: " .. cmd)
end

function M.make_ca(dir)
  assert(os.execute("mkdir -p " .. q(dir)))
  local f = function(name) return dir .. "/" .. name end
  run(("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=sesh-test-CA " ..
       "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign " ..
       "-keyout %s -out %s"):format(q(f "ca.key"), q(f "ca.pem")))
  run(("openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout %s -out %s")
      :format(q(f "server.key"), q(f "server.csr")))
  util.write(f "server.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\n" ..
             "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n" ..
             "extendedKeyUsage=serverAuth\n")
  run(("openssl x509 -req -in %s -CA %s -CAkey %s -CAcreateserial -days 2 -out %s -extfile %s")
      :format(q(f "server.csr"), q(f "ca.pem"), q(f "ca.key"), q(f "server.pem"), q(f "server.ext")))
  return { ca = f "ca.pem", cert = f "server.pem", key = f "server.key", dir = dir }
end

local function here()
  local src = debug.getinfo(1, "S").source:sub(2)
  return src:match("^(.*)/[^/]*$") or "."
end

function M.front(opts)
  local cmd = ("exec /usr/bin/python3 %s/tls_front.py --cert %s --key %s --to %s"):format(
    here(), q(opts.cert), q(opts.key), q(opts.to))
  local pipe = assert(io.popen(cmd, "r"))
  local line = pipe:read("l")
  local port, pid = (line or ""):match("^tls_front: listening on (%d+) pid (%d+)")
  assert(port, "tls_front did not start: " .. tostring(line))
  local front = { port = tonumber(port), pid = tonumber(pid), pipe = pipe,
                  url = "https://127.0.0.1:" .. port }
  function front:stop()
    if self.pipe then
      os.execute("kill " .. self.pid .. " 2>/dev/null")
      self.pipe:close()
      self.pipe = nil
    end
  end
  return front
end

return M
