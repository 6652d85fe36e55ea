-- The workflow embed_demo runs through libsesh: a session on the local pool.
local sessions = require "sessions"

local s <close> = sessions.new{}
local r = s:execute("6 * 7")
print("status: " .. r.status)
print("result: " .. tostring(r.result))
s:upload{ name = "embedded.txt", data = "sent from C\0and back" }
assert(s:download("embedded.txt") == "sent from C\0and back", "download differs from upload")
workflow_answer = r.result
