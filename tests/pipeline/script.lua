-- Helpers for specs that run a workflow script in the real host and check
-- what it wrote: run a command, make a temp dir, read files, check PNGs.

local util = require "support.util"

local M = {}

local quote = util.quote
M.quote = quote
M.SESH = util.SESH
M.read = util.read

local counter = 0
--- A fresh directory under the suite's temp dir.
function M.tmpdir(tag)
  counter = counter + 1
  local dir = ("%s/%s-%d-%d"):format(os.getenv("SESH_TEST_TMP") or "/tmp", tag or "out",
                                      os.time(), counter)
  assert(os.execute("mkdir -p " .. quote(dir)))
  return dir
end

--- Run `sesh script args...` with extra environment (false unsets a
-- variable). Returns exit status, stdout, stderr.
function M.run(script, args, env)
  local dir = M.tmpdir("run")
  local parts, sets = { "env" }, {}
  for k, v in pairs(env or {}) do      -- env wants every -u before the first NAME=value
    if v == false then parts[#parts + 1] = "-u " .. k else sets[#sets + 1] = k .. "=" .. quote(v) end
  end
  table.move(sets, 1, #sets, #parts + 1, parts)
  parts[#parts + 1] = quote(M.SESH)
  parts[#parts + 1] = quote(script)
  for _, a in ipairs(args or {}) do parts[#parts + 1] = quote(a) end
  local cmd = table.concat(parts, " ") .. (" >%s/out 2>%s/err </dev/null"):format(quote(dir), quote(dir))
  local _, _, code = os.execute(cmd)
  return code, M.read(dir .. "/out") or "", M.read(dir .. "/err") or ""
end

-- CRC-32 (ISO-HDLC), as PNG chunks carry it.
local crc_table = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    c = (c & 1) ~= 0 and (0xEDB88320 ~ (c >> 1)) or (c >> 1)
  end
  crc_table[i] = c
end
local function crc32(s, i, j)
  local c = 0xFFFFFFFF
  for k = i, j do c = crc_table[(c ~ s:byte(k)) & 0xFF] ~ (c >> 8) end
  return c ~ 0xFFFFFFFF
end

--- Check a PNG file: signature, an IHDR chunk first with a valid CRC and
-- sane fields, an IEND chunk last. Returns { width, height, depth, color }
-- or nil and what is wrong.
function M.png_info(path)
  local s = M.read(path)
  if not s then return nil, "missing: " .. path end
  if s:sub(1, 8) ~= "\137PNG\r\n\26\n" then return nil, "no PNG signature" end
  if #s < 8 + 25 + 12 then return nil, "too short for a PNG" end
  local len, kind = string.unpack(">I4c4", s, 9)
  if kind ~= "IHDR" or len ~= 13 then return nil, "the first chunk is not a 13-byte IHDR" end
  local w, h, depth, color, comp, filter, interlace = string.unpack(">I4I4BBBBB", s, 17)
  local crc = string.unpack(">I4", s, 30)
  if crc ~= crc32(s, 13, 29) then return nil, "the IHDR CRC is wrong" end
  if w == 0 or h == 0 then return nil, "zero width or height" end
  if comp ~= 0 or filter ~= 0 or interlace > 1 then return nil, "unknown IHDR methods" end
  local ok_depth = ({ [0] = { 1, 2, 4, 8, 16 }, [2] = { 8, 16 }, [3] = { 1, 2, 4, 8 },
                      [4] = { 8, 16 }, [6] = { 8, 16 } })[color]
  local fits = false
  for _, d in ipairs(ok_depth or {}) do fits = fits or d == depth end
  if not fits then return nil, ("bad colour type %d / bit depth %d"):format(color, depth) end
  if s:sub(-12) ~= "\0\0\0\0IEND\174\66\96\130" then return nil, "no IEND chunk at the end" end
  return { width = w, height = h, depth = depth, color = color }
end

return M
