/*
 * lcore.c — sessions.core: the small byte-level helpers the Lua face needs and
 * Lua is slow or clumsy at.
 *
 *   core.b64encode(s) -> string
 *   core.b64decode(s) -> string | nil, reason   (whitespace ignored, padding optional)
 *   core.png_info(bytes) -> width, height | nil, reason
 *   core.uuid4() -> "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx" (from getrandom)
 *   core.json_decode(...): sessions.json's fast path (ljson.c)
 */
#include "binding/binding.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <string.h>
#include <sys/random.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int l_b64encode(lua_State *L) {
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, (n + 2) / 3 * 4);
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = s[i] << 16 | s[i + 1] << 8 | s[i + 2];
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[v >> 12 & 63];
        out[o++] = b64_alphabet[v >> 6 & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (i < n) {
        unsigned v = s[i] << 16 | (i + 1 < n ? s[i + 1] << 8 : 0);
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[v >> 12 & 63];
        out[o++] = i + 1 < n ? b64_alphabet[v >> 6 & 63] : '=';
        out[o++] = '=';
    }
    luaL_pushresultsize(&b, o);
    return 1;
}

static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;   /* the URL-safe alphabet too */
    if (c == '/' || c == '_') return 63;
    return -1;
}

static int l_b64decode(lua_State *L) {
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, n / 4 * 3 + 3);
    size_t o = 0, pad = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int v = b64_value(c);
        if (v < 0 || pad > 0) {
            lua_pushnil(L);
            lua_pushfstring(L, "invalid base64: %s at byte %d",
                            v < 0 ? "bad character" : "data after padding", (int)i + 1);
            return 2;
        }
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)(acc >> bits & 0xff);
        }
    }
    if (bits >= 6 || pad > 2) {     /* one lone character cannot encode a byte */
        lua_pushnil(L);
        lua_pushliteral(L, "invalid base64: truncated input");
        return 2;
    }
    luaL_pushresultsize(&b, o);
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
    unsigned char r[16];
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t k = getrandom(r + got, sizeof r - got, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return luaL_error(L, "uuid4: getrandom failed: %s", strerror(errno));
        got += (size_t)k;
    }
    r[6] = (r[6] & 0x0f) | 0x40;    /* version 4 */
    r[8] = (r[8] & 0x3f) | 0x80;    /* RFC 4122 variant */
    char s[37];
    static const char hex[] = "0123456789abcdef";
    for (int i = 0, o = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            s[o++] = '-';
        s[o++] = hex[r[i] >> 4];
        s[o++] = hex[r[i] & 15];
    }
    lua_pushlstring(L, s, 36);
    return 1;
}

static const luaL_Reg core_functions[] = {
    {"b64encode", l_b64encode},
    {"b64decode", l_b64decode},
    {"png_info", l_png_info},
    {"uuid4", l_uuid4},
    {"json_decode", sesh_core_json_decode},
    {NULL, NULL}
};

int luaopen_sessions_core(lua_State *L) {
    luaL_newlib(L, core_functions);
    return 1;
}
