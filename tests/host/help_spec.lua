-- sesh --help: lua's usage, then the console, Python mode and the environment.
local cli = require "host.cli"

describe("sesh --help", function()
  it("prints lua's options, the console, Python mode and the variables, and exits 0", function()
    local r = cli.run{ "--help" }
    assert.are.equal(0, r.code)
    assert.are.equal("", r.err)
    assert.matches("^usage: sesh %[options%] %[script %[args%]%]\nAvailable options are:\n", r.out)
    for _, want in ipairs{ "-e stat", "-l g=mod", "-E ", "--help", "Console:", "Python mode:",
                           "a line starting with % runs as Python", "Tab completes from",
                           "POOL_MANAGEMENT_ENDPOINT", "SESH_TOKEN, SESH_TOKEN_FILE",
                           "SSL_CERT_FILE, CURL_CA_BUNDLE", "SESH_POOL_ARGS", "SESH_LOG=debug",
                           "OPENAI_API_KEY", "LUA_INIT" } do
      assert.matches(want, r.out, 1, true)
    end
  end)

  it("is an option only before the script: after it, the script's argument", function()
    local dir = cli.tmpdir()
    local script = cli.write(dir .. "/args.lua", "print(...)")
    local r = cli.run{ script, "--help" }
    assert.are.equal(0, r.code)
    assert.are.equal("--help\n", r.out)
  end)

  it("leaves other unknown options unrecognized, as lua does", function()
    local r = cli.run{ "--hlep" }
    assert.are.equal(1, r.code)
    assert.matches("^sesh: unrecognized option '%-%-hlep'\nusage: sesh", r.err)
  end)
end)
