/*
 * lcore.c — sessions.core: what the Lua face needs from C, in one table.
 * Byte-level helpers live here; the rest beside what it belongs to
 * (binding.h):
 *
 *   core.b64encode(s) -> string
 *   core.b64decode(s) -> string | nil, reason   (whitespace ignored, padding optional)
 *   core.png_info(bytes) -> width, height | nil, reason
 *   core.uuid4() -> "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" (from getrandom)
 *   core.json_decode(text, order, null, empty_array)     ljson.c
 *   core.error(fields), core.is_error(v)                  lerror.c
 *   core.sleep(seconds)                                   lhttp.c
 *   core.monotonic, getuid, stat, mkdir, lock, spawn, wait   los.c
 */
#include "binding/binding.h"

#include "common/common.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <string.h>

static int l_b64encode(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, SESH_B64_ENCODED_LEN(n));
    luaL_pushresultsize(&b, sesh_b64_encode(out, s, n));
    return 1;
}

static int l_b64decode(lua_State *L) {
    size_t n, at;
    const char *s = luaL_checklstring(L, 1, &n), *why;
    luaL_Buffer b;
    unsigned char *out = (unsigned char *)luaL_buffinitsize(L, &b, SESH_B64_DECODED_MAX(n));
    ptrdiff_t len = sesh_b64_decode(out, s, n, &why, &at);
    if (len < 0) {
        lua_pushnil(L);
        if (at < n)
            lua_pushfstring(L, "invalid base64: %s at byte %d", why, (int)at + 1);
        else
            lua_pushfstring(L, "invalid base64: %s", why);
        return 2;
    }
    luaL_pushresultsize(&b, (size_t)len);
    return 1;
}

static unsigned long be32(const unsigned char *p) {
    return (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 | p[3];
}

static int l_png_info(lua_State *L) {
    static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t n;
    const unsigned char *p = (const unsigned char *)luaL_checklstring(L, 1, &n);
    const char *why = NULL;
    if (n < 8 || memcmp(p, signature, 8) != 0)
        why = "not a PNG (bad signature)";
    else if (n < 24 || be32(p + 8) != 13 || memcmp(p + 12, "IHDR", 4) != 0)
        why = "truncated PNG (no IHDR header)";
    else if (be32(p + 16) == 0 || be32(p + 20) == 0 || be32(p + 16) > 0x7fffffff ||
             be32(p + 20) > 0x7fffffff)
        why = "bad PNG size in IHDR";
    if (why) {
        lua_pushnil(L);
        lua_pushstring(L, why);
        return 2;
    }
    lua_pushinteger(L, (lua_Integer)be32(p + 16));
    lua_pushinteger(L, (lua_Integer)be32(p + 20));
    return 2;
}

static int l_uuid4(lua_State *L) {
    char s[37];
    if (sesh_uuid4(s) != 0)
        return luaL_error(L, "uuid4: getrandom failed: %s", strerror(errno));
    lua_pushlstring(L, s, 36);
    return 1;
}

static const luaL_Reg core_functions[] = {
    {"b64encode", l_b64encode},
    {"b64decode", l_b64decode},
    {"png_info", l_png_info},
    {"uuid4", l_uuid4},
    {"json_decode", sesh_core_json_decode},
    {"error", sesh_core_error},
    {"is_error", sesh_core_is_error},
    {"sleep", sesh_core_sleep},
    {NULL, NULL}
};

void sesh_handle_methods(lua_State *L, lua_CFunction close, lua_CFunction tostring)
{
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
    if (tostring) {
        lua_pushcfunction(L, tostring);
        lua_setfield(L, -2, "__tostring");
    }
}

int luaopen_sessions_core(lua_State *L) {
    luaL_newlib(L, core_functions);
    sesh_core_open_os(L);
    return 1;
}
