-- Starts tests/support/openai_stub.py (a scripted OpenAI-compatible server)
-- for a spec, and reads back what it received.
--
--   local stub = require("agent.openai_stub").start{ api_key = "sk-test", steps = {...} }
--   stub.base_url            -- http://127.0.0.1:PORT/v1
--   stub:requests()          -- every request so far: { method, path, query, headers, body, status }
--   stub:stop()

local cjson = require "cjson"

local M = {}

local PYTHON = os.getenv("SESH_TEST_PYTHON") or "/usr/bin/python3"
local SCRIPT = "tests/support/openai_stub.py"

local function tmpdir()
  return os.getenv("SESH_TEST_TMP") or "/tmp"
end

local counter = 0
local function tmpfile(suffix)
  counter = counter + 1
  return ("%s/openai-stub-%d-%d-%s"):format(tmpdir(), os.time(), counter, suffix)
end

local quote = require("support.util").quote

local Stub = {}
Stub.__index = Stub

function M.start(script)
  local script_file, record_file = tmpfile("script.json"), tmpfile("requests.jsonl")
  local f = assert(io.open(script_file, "w"))
  f:write(cjson.encode(script))
  f:close()
  local cmd = ("exec %s %s --script %s --record %s --idle-exit 60"):format(
    quote(PYTHON), quote(SCRIPT), quote(script_file), quote(record_file))
  local proc = assert(io.popen(cmd, "r"))
  local line = proc:read("l") or ""
  local url, pid = line:match("listening on (http://%S+) pid (%d+)")
  if not url then
    proc:close()
    error("openai_stub did not start: " .. line)
  end
  return setmetatable({
    url = url, base_url = url .. "/v1", pid = pid, proc = proc,
    script_file = script_file, record_file = record_file,
  }, Stub)
end

function Stub:requests()
  local list = {}
  local f = io.open(self.record_file, "r")
  if not f then return list end
  for line in f:lines() do list[#list + 1] = cjson.decode(line) end
  f:close()
  return list
end

function Stub:stop()
  if self.proc then
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    self.proc:close()
    self.proc = nil
    os.remove(self.script_file)
    os.remove(self.record_file)
  end
end

-- A scripted reply that calls tools: calls = { {id, name, arguments}, ... }.
function M.calls(calls, content)
  return { reply = { content = content, tool_calls = calls } }
end

-- A scripted final answer.
function M.answer(text)
  return { reply = { content = text } }
end

return M
