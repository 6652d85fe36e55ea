-- Ctrl-C (SIGINT) stops a running script, or a request in flight, like lua does:
-- exit status 1 and a message, promptly.
local cli = require "host.cli"

-- Runs sh code with $SESH set; returns its stdout.
local function sh(code)
  local p = io.popen("SESH=" .. cli.quote(cli.sesh) .. " sh -c " .. cli.quote(code) .. " 2>&1")
  local out = p:read("a")
  p:close()
  return out
end

describe("Ctrl-C in a script", function()
  it("interrupts a Lua loop with 'interrupted!' and status 1", function()
    local out = sh([[
      "$SESH" -e 'while true do end' 2>err & pid=$!
      sleep 0.5; kill -INT $pid
      wait $pid; echo "status=$?"; cat err]])
    assert.matches("status=1\n", out, 1, true)
    assert.matches("sesh: interrupted!\nstack traceback:", out, 1, true)
  end)

  it("interrupts a request to a server that never answers", function()
    local dir = cli.tmpdir()
    local out = sh(([[
      cd %s
      /usr/bin/python3 -c '
import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
open("port", "w").write(str(s.getsockname()[1]))
time.sleep(30)' & server=$!
      while [ ! -s port ]; do sleep 0.1; done
      "$SESH" -e "require('sessions.http').client{}:request{ url = 'http://127.0.0.1:$(cat port)/' }" 2>err &
      pid=$!
      sleep 1; start=$(date +%%s); kill -INT $pid
      wait $pid; echo "status=$?"; echo "took=$(( $(date +%%s) - start ))"
      kill $server; cat err]]):format(cli.quote(dir)))
    assert.matches("status=1\n", out, 1, true)
    local took = tonumber(out:match("took=(%d+)"))
    assert.is_true(took ~= nil and took <= 3, out)
    assert.matches("sesh: interrupted", out, 1, true)
  end)
end)
