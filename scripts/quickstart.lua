-- quickstart.lua — the seed walkthrough of sesh, as a Lua workflow.
--
--   sesh scripts/quickstart.lua [output-dir]
--
-- With POOL_MANAGEMENT_ENDPOINT unset it runs on the local pool (started on
-- demand); set it (and sign in to Azure) to run the same steps on Azure.

local sessions = require "sessions"

local outdir = arg and arg[1] or os.getenv("SESH_OUTPUT_DIR") or "."

-- Print one step's outcome the way a person wants to read it.
local function show(title, r)
  print(("== %s  [%s, %d ms]"):format(title, r.status, r.ms or 0))
  if r.stdout ~= "" then io.write("stdout:\n", r.stdout, r.stdout:sub(-1) == "\n" and "" or "\n") end
  if r.stderr ~= "" then io.write("stderr:\n", r.stderr, r.stderr:sub(-1) == "\n" and "" or "\n") end
  if sessions.is_image(r.result) then
    print(("result: %s image"):format(r.result.format))
  else
    print("result: " .. tostring(r.result))
  end
end

local s <close> = sessions.new{}

-- 1. A first execution in a fresh session.
show("6 * 7", s:execute("6 * 7"))

-- 2. Data in, computation on it.
s:upload{ name = "important_data.json", data = '{"important_data": [1, 10, -1541]}' }
show("sum of uploaded data", s:execute([[
import json

with open("/mnt/data/important_data.json") as f:
    data = json.load(f)

sum(data['important_data'])
]]))

-- 3. A plot, saved on this machine.
local r = s:execute([[
import numpy as np
import matplotlib.pyplot as plt

x = np.linspace(-1, 1, 400)
y = np.sin(x)

plt.plot(x, y)
plt.title('Plot of sin(x) from -1 to 1')
plt.xlabel('x')
plt.ylabel('sin(x)')
plt.grid(True)
plt.show()
]])
show("plot of sin(x)", r)
if sessions.is_image(r.result) then
  local path = sessions.save_image(r.result, outdir .. "/sin.png")
  print("saved the plot to " .. path)
else
  error("expected an image result, got: " .. tostring(r.result), 0)
end
