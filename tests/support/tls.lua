-- support/tls.lua — a test CA, a server certificate it signs, and an https
-- stand-in in front of a plain-HTTP server (tests/support/tls_front.py).
--
--   local tls = require "support.tls"
--   local ca = tls.make_ca(dir)     -- { ca = "ca.pem", cert = "server.pem", key = "server.key" }
--                                   -- (the server's names: IP 127.0.0.1 and localhost)
--   tls.server_cert(ca, "other")    -- another one signed by the CA: { cert, key }
--   tls.fingerprint(file), tls.served_fingerprint(host, port)   -- SHA-256, "AB:CD:..."
--   tls.handshake(host, port, "tls1_2")  -- "TLSv1.2", or nil when refused
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

-- A server certificate signed by ca (names: IP 127.0.0.1 and localhost), in
-- ca.dir as NAME.pem and NAME.key; returns { cert, key }.
function M.server_cert(ca, name, cn)
  local f = function(ext) return ("%s/%s.%s"):format(ca.dir, name, ext) end
  run(("openssl req -newkey rsa:2048 -nodes -subj /CN=%s -keyout %s -out %s")
      :format(cn or "127.0.0.1", q(f "key"), q(f "csr")))
  util.write(f "ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\n" ..
             "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n" ..
             "extendedKeyUsage=serverAuth\n")
  run(("openssl x509 -req -in %s -CA %s -CAkey %s -CAcreateserial -days 2 -out %s -extfile %s")
      :format(q(f "csr"), q(ca.ca), q(ca.ca_key), q(f "pem"), q(f "ext")))
  return { cert = f "pem", key = f "key" }
end

function M.make_ca(dir)
  assert(os.execute("mkdir -p " .. q(dir)))
  local f = function(name) return dir .. "/" .. name end
  run(("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=sesh-test-CA " ..
       "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign " ..
       "-keyout %s -out %s"):format(q(f "ca.key"), q(f "ca.pem")))
  local ca = { ca = f "ca.pem", ca_key = f "ca.key", dir = dir }
  local server = M.server_cert(ca, "server")
  ca.cert, ca.key = server.cert, server.key
  return ca
end

-- The SHA-256 fingerprint of a PEM certificate file, or of the certificate
-- a TLS server at host:port sends (a new connection).
function M.fingerprint(file)
  local p = io.popen(("openssl x509 -noout -fingerprint -sha256 -in %s 2>/dev/null"):format(q(file)))
  local out = p:read("a")
  p:close()
  return out:match("=(%S+)")
end

-- The protocol a handshake with host:port settles on when the client offers
-- only `version` ("tls1_1", "tls1_2", "tls1_3"; any cipher), or nil.
function M.handshake(host, port, version)
  local p = io.popen(("openssl s_client -connect %s:%s -%s -cipher 'DEFAULT:@SECLEVEL=0' </dev/null 2>&1")
                     :format(host, port, version))
  local out = p:read("a")
  p:close()
  return out:match("New, (TLSv[%d.]+), Cipher is")
end

function M.served_fingerprint(host, port)
  local p = io.popen(("openssl s_client -connect %s:%s </dev/null 2>/dev/null | " ..
                      "openssl x509 -noout -fingerprint -sha256 2>/dev/null"):format(host, port))
  local out = p:read("a")
  p:close()
  return out:match("=(%S+)")
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
