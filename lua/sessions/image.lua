-- sessions.image — image results: tell them, decode them, save them.
--
-- A cell that leaves a figure open returns
--   { type = "image", format = "png", base64_data = "<base64>" }
-- (pool-api.md section 6).  decode() gives the bytes with their real format
-- and size, read from the file's own header, not trusted from the answer.

local errors = require "sessions.errors"
local core = require "sessions.core"

local image = {}

function image.is_image(v)
  return type(v) == "table" and type(v.type) == "string" and v.type:lower() == "image"
     and type(v.base64_data) == "string"
end

local function b64decode(s)
  local bytes, why = core.b64decode(s)
  if not bytes then error(why or "bad base64", 0) end
  return bytes
end

-- Format, width and height from the first bytes of a file.
function image.probe(bytes)
  if bytes:sub(1, 8) == "\137PNG\r\n\26\n" and bytes:sub(13, 16) == "IHDR" and #bytes >= 24 then
    local w, h = string.unpack(">I4I4", bytes, 17)
    return "png", w, h
  end
  if bytes:sub(1, 6) == "GIF87a" or bytes:sub(1, 6) == "GIF89a" then
    local w, h = string.unpack("<I2I2", bytes, 7)
    return "gif", w, h
  end
  if bytes:sub(1, 2) == "\255\216" then              -- JPEG: walk to a SOFn segment
    local pos = 3
    while pos + 9 <= #bytes do
      if bytes:byte(pos) ~= 0xFF then break end
      local marker = bytes:byte(pos + 1)
      local len = string.unpack(">I2", bytes, pos + 2)
      if marker >= 0xC0 and marker <= 0xCF and marker ~= 0xC4 and marker ~= 0xC8 and marker ~= 0xCC then
        local h, w = string.unpack(">I2I2", bytes, pos + 5)
        return "jpeg", w, h
      end
      pos = pos + 2 + len
    end
    return "jpeg"
  end
  if bytes:sub(1, 4) == "RIFF" and bytes:sub(9, 12) == "WEBP" then return "webp" end
  if bytes:find("^%s*<svg") or bytes:find("^%s*<%?xml") then return "svg" end
  return nil
end

-- An image result -> { bytes, format, width, height }.
function image.decode(v)
  if not image.is_image(v) then
    errors.usage("decode image", "the value is not an image result (a table with type = \"image\" and base64_data)")
  end
  local ok, bytes = pcall(b64decode, v.base64_data)
  if not ok or type(bytes) ~= "string" then
    errors.raise{ kind = "protocol", op = "decode image",
                  message = "the image's base64_data is not valid base64 (" .. tostring(bytes) .. ")" }
  end
  local format, w, h = image.probe(bytes)
  return { bytes = bytes, format = format or (type(v.format) == "string" and v.format:lower()) or "bin",
           width = w, height = h }
end

local function write_file(op, path, bytes)
  local f, err = io.open(path, "wb")
  if not f then errors.raise{ kind = "usage", op = op, message = "cannot write " .. tostring(err) } end
  local ok, werr = f:write(bytes)
  local cok, cerr = f:close()
  if not ok or not cok then
    os.remove(path)
    errors.raise{ kind = "usage", op = op, message = "cannot write " .. path .. ": " .. tostring(werr or cerr) }
  end
end

-- Save an image result; path defaults to "image.<format>" and a path ending
-- in "/" is taken as a directory.  Returns the path written.
function image.save(v, path)
  local img = image.decode(v)
  if path == nil or path == "" then path = "image." .. img.format
  elseif type(path) ~= "string" then errors.usage("save image", "the path must be a string")
  elseif path:sub(-1) == "/" then path = path .. "image." .. img.format end
  write_file("save image", path, img.bytes)
  return path, img
end

return image
