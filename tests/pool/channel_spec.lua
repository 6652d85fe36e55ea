-- The runner's channel as untrusted input: the user's code shares the
-- runner's process, so it can write anything on the pool's channel (fd 3).
-- Every frame out of the protocol loses that session's interpreter with a
-- reason naming the rule, costs the pool at most a few frames of memory, and
-- never touches another session.
local support = require "support.pool"
local http = require "sessions.http"

-- What an execute reply may take with the pool's default --max-output of
-- 1048576 characters (sandbox.c: both streams at 6 bytes a character, the
-- 4 MiB result cap, 64 KiB more).
local MAX_OUTPUT = 1048576
local FRAME = 12 * MAX_OUTPUT + (4 << 20) + (64 << 10)

-- Python for the cells: writes frames on the channel as the runner would.
local FRAMES = ([[
import fcntl, json, os, struct, sys, termios
FRAME = %d
def send(body, length=None):
    view = memoryview(struct.pack('>I', len(body) if length is None else length) + body)
    while view:
        view = view[os.write(3, view):]
def reply(**fields):
    r = {"status": "Success", "stdout": "forged\n", "stderr": "", "result": "", "ms": 0,
         "stdout_truncated": False, "stderr_truncated": False}
    r.update(fields)
    return json.dumps(r).encode()
def wait_read():
    # Until the pool has read all that was written on the channel, so that
    # the runner's own reply, after this cell, comes in a read of its own.
    out = bytearray(4)
    while fcntl.ioctl(3, termios.TIOCOUTQ, out) == 0 and int.from_bytes(out, sys.byteorder):
        os.sched_yield()
def request_seq():
    # The request the runner is answering, found in its own frames: code in
    # its process can read anything of it.
    f = sys._getframe()
    while f:
        r = f.f_locals.get('request')
        if isinstance(r, dict) and r.get('op') == 'execute':
            return r.get('seq')
        f = f.f_back
]]):format(FRAME)

local function status_kb(pid, field)
  local s = support.read("/proc/" .. pid .. "/status") or ""
  return tonumber(s:match(field .. ":%s+(%d+) kB"))
end

describe("the runner's channel", function()
  local pool
  setup(function()
    pool = support.start{ args = { "--timeout", "60" } }
  end)
  teardown(function() pool:stop(); pool:cleanup() end)

  local function run(id, code, o)
    o = o or {}
    o.identifier = id
    local res, p = pool:execute(code, o)
    assert.are.equal(200, res.status, res.body)
    return p
  end

  local function assert_lost(p, reason)
    assert.are.equal("Failure", p.status, p.stderr)
    assert.matches("was lost %(interpreter lost: [^)]*" .. reason, p.stderr)
  end

  it("bounds what a flood from several sessions at once costs the pool", function()
    -- Each flooding session writes, one frame a cell: 60 MB of zeros in an
    -- array; zeros just within the frame limit; a frame of the reply's shape
    -- at the limit; brackets nested 16 M deep.
    local floods = {
      { "send(b'[' + b'0,' * (30 << 20) + b'0]')", "over the execute reply's limit of " .. FRAME },
      { "send(b'[' + b'0,' * (FRAME // 2 - 2) + b'0]')", "more than 64 JSON values" },
      { "send(reply(stdout='x' * (FRAME - 300), seq=-1))", "its reply answers request %-1" },
      { "send(b'[' * FRAME)", "nests JSON deeper than 2 levels" },
    }
    local flooders = 4
    for i = 1, flooders do run("flood-" .. i, "ready = True") end
    run("bystander", "state = 42")
    local before = status_kb(pool.pid, "VmHWM")

    local done, answers = 0, {}
    local fns = {}
    for i = 1, flooders do
      fns[i] = function()
        local seen = {}
        for _, flood in ipairs(floods) do
          seen[#seen + 1] = { run("flood-" .. i, FRAMES .. flood[1]), flood[2] }
        end
        done = done + 1
        return seen
      end
    end
    fns[flooders + 1] = function()
      repeat
        answers[#answers + 1] = run("bystander", "print(state)").stdout
      until done == flooders
    end
    local results, errors = http.run(fns)
    assert.is_nil(errors)
    local peak = status_kb(pool.pid, "VmHWM")
    -- A flooding session costs the pool about three frames at most (the
    -- text, jansson's copy of a string token, the string it makes of it):
    -- four are allowed. A sanitizer keeps freed memory in quarantine
    -- (256 MB) and shadows the rest.
    local allowed = flooders * 4 * FRAME / 1024 + 64 * 1024
    if os.getenv("ASAN_OPTIONS") then allowed = allowed * 1.25 + 256 * 1024 end
    assert.is_true(peak - before < allowed,
                   ("the pool's peak grew by %d MB (allowed %d MB)"):format((peak - before) // 1024,
                                                                          allowed // 1024))
    for i = 1, flooders do
      for _, seen in ipairs(results[i]) do assert_lost(seen[1], seen[2]) end
      assert.are.equal(42, run("flood-" .. i, "6 * 7").result)   -- a new interpreter
    end
    assert.is_true(#answers >= 1)
    for _, a in ipairs(answers) do assert.are.equal("42\n", a) end
    assert.are.equal("42\n", run("bystander", "print(state)").stdout)
  end)

  it("loses the interpreter on a reply forged without the request's number", function()
    run("forger", "kept = 1")
    assert_lost(run("forger", FRAMES .. "send(reply())\nwait_read()"), "carries no request number")
    assert.are.equal(42, run("forger", "6 * 7").result)
  end)

  it("loses the interpreter at a second reply, even one with the request's number", function()
    -- Code in the runner's process can answer for it (it could as well print
    -- what it likes), but the runner's own reply then comes out of turn.
    local p = run("twice", FRAMES .. "send(reply(seq=request_seq()))\nwait_read()")
    assert.are.equal("forged\n", p.stdout)
    assert_lost(run("twice", "6 * 7"), "out of turn")
    assert.are.equal(42, run("twice", "6 * 7").result)
  end)

  it("loses the interpreter on bytes written while no request was pending", function()
    -- A thread writes a well-formed reply once the runner waits for its next
    -- request and the pool has read the runner's reply, then leaves a file to
    -- say so.
    local p = run("unsolicited", FRAMES .. [[
import threading
def reading_channel():
    with open('/proc/self/task/%d/syscall' % os.getpid()) as f:
        return f.read().split()[:2] == ['0', '0x3']    # read(3, ...)
def write_later():
    while not reading_channel():
        os.sched_yield()
    wait_read()
    send(reply())
    open('/mnt/data/written', 'w').close()
threading.Thread(target=write_later).start()
]])
    assert.are.equal("Success", p.status, p.stderr)
    local res
    for _ = 1, 600 do
      res = pool:request{ path = "files/written", identifier = "unsolicited", api_version = "2025-10-02-preview" }
      if res.status == 200 then break end
      support.sleep(0.05)
    end
    assert.are.equal(200, res.status)
    assert_lost(run("unsolicited", "6 * 7"), "out of turn: %d+ bytes came while no request was pending")
    assert.are.equal(42, run("unsolicited", "6 * 7").result)
  end)

  it("loses the interpreter on a frame whose length header lies", function()
    assert_lost(run("liar", FRAMES .. "os.write(3, b'\\xff\\xff\\xff\\xff{}')"),
                "frame of 4294967295 bytes, over the execute reply's limit")
    assert_lost(run("liar", FRAMES .. "send(reply(seq=request_seq()), length=10)"),
                "out of turn: %d+ bytes came after its reply")
    -- one that says more: the runner's own reply is taken for the rest
    assert_lost(run("liar", FRAMES .. "body = reply(seq=request_seq())\n" ..
                            "send(body, length=len(body) + 100)\nwait_read()"), "not valid JSON")
    assert.are.equal(42, run("liar", "6 * 7").result)
  end)

  it("refuses a result over its cap with a clear failure, and keeps the session", function()
    run("big-result", "kept = 7")
    local p = run("big-result", "'x' * (5 << 20)")
    assert.are.equal("Failure", p.status)
    assert.matches("the cell's result %(a value whose text takes 5242880 bytes as JSON%) is over the "
                   .. "limit of 4194304 bytes and was not returned", p.stderr)
    p = run("big-result", "import matplotlib.pyplot as plt, numpy as np\n" ..
                          "fig = plt.figure(figsize=(15, 15), dpi=100)\n" ..
                          "fig.add_axes([0, 0, 1, 1]).imshow(np.random.default_rng(1).random((1500, 1500, 3)))")
    assert.are.equal("Failure", p.status)
    assert.matches("the cell's result %(an image whose base64 takes %d+ bytes as JSON%) is over", p.stderr)
    assert.matches("Save the figure to a file in /mnt/data", p.stderr)
    assert.are.equal(7, run("big-result", "kept").result)
    assert.are.equal(4 << 20, #run("big-result", "'y' * (4 << 20)").result)
  end)
end)
