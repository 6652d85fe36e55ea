/*
 * ljson.c — core.json_decode: the fast path of sessions.json's decoder.
 *
 *   core.json_decode(text, order, null, empty_array) -> true, value | false
 *
 * Every answer of the pool API goes through a JSON decoder that must keep
 * integers apart from floats and may have to remember the key order of
 * objects, which lua-cjson does not; the Lua decoder in sessions/json.lua
 * does both but costs more than anything else on an execution's client side.
 * This is the same decoder for standard JSON, in C:
 *
 *   order        nil, or a table that gets object -> { key, ... } in text order
 *   null         the value that stands for JSON null
 *   empty_array  the metatable that marks an empty array apart from {}
 *
 * It answers false for anything it does not take as is (a syntax error, NaN,
 * a number Lua reads differently, nesting over MAX_DEPTH): the Lua decoder
 * then decides, with its own messages, so the two never disagree.
 */
#include "binding/binding.h"

#include <lauxlib.h>
#include <lua.h>
#include <string.h>

#define MAX_DEPTH 200           /* deeper is rare; Lua's decoder takes it then */

typedef struct {
    lua_State *L;
    const char *p, *end;
    int depth;
    int order, null, empty_array;   /* stack indices of the arguments */
} decoder;

static int decode_value(decoder *d);

static void skip_space(decoder *d)
{
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
        d->p++;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

/* A \u escape at d->p (just past the 'u'), a surrogate pair joined as the Lua
 * decoder joins it: a lone half is written as it is, as utf8.char would. */
static int unicode_escape(decoder *d, luaL_Buffer *b)
{
    unsigned cp, lo;
    if (d->end - d->p < 4 || !hex4(d->p, &cp))
        return 0;
    d->p += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF && d->end - d->p >= 6 && d->p[0] == '\\' &&
        d->p[1] == 'u' && hex4(d->p + 2, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
        cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00);
        d->p += 6;
    }
    char u[4];
    size_t n;
    if (cp < 0x80) { u[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { u[0] = (char)(0xC0 | cp >> 6); u[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12); u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        u[0] = (char)(0xF0 | cp >> 18); u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3F)); u[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
    }
    luaL_addlstring(b, u, n);
    return 1;
}

/* A string at d->p (just past its opening quote), pushed. */
static int decode_string(decoder *d)
{
    const char *start = d->p;
    while (d->p < d->end && *d->p != '"' && *d->p != '\\')
        d->p++;
    if (d->p >= d->end)
        return 0;
    if (*d->p == '"') {                 /* no escape: most strings */
        lua_pushlstring(d->L, start, (size_t)(d->p - start));
        d->p++;
        return 1;
    }
    luaL_Buffer b;
    luaL_buffinit(d->L, &b);
    luaL_addlstring(&b, start, (size_t)(d->p - start));
    while (d->p < d->end) {
        char c = *d->p++;
        if (c == '"') {
            luaL_pushresult(&b);
            return 1;
        }
        if (c != '\\') {
            luaL_addchar(&b, c);
            continue;
        }
        if (d->p >= d->end)
            break;
        switch (*d->p++) {
        case '"': luaL_addchar(&b, '"'); break;
        case '\\': luaL_addchar(&b, '\\'); break;
        case '/': luaL_addchar(&b, '/'); break;
        case 'b': luaL_addchar(&b, '\b'); break;
        case 'f': luaL_addchar(&b, '\f'); break;
        case 'n': luaL_addchar(&b, '\n'); break;
        case 'r': luaL_addchar(&b, '\r'); break;
        case 't': luaL_addchar(&b, '\t'); break;
        case 'u':
            if (!unicode_escape(d, &b))
                goto bad;
            break;
        default:
            goto bad;
        }
    }
bad:
    luaL_pushresult(&b);                /* the buffer may hold a box on the stack */
    lua_pop(d->L, 1);
    return 0;
}

/* A number in JSON's own grammar, read by Lua itself: an integer literal
 * that fits stays an integer, as the Lua decoder has it. */
static int decode_number(decoder *d)
{
    const char *s = d->p;
    if (d->p < d->end && *d->p == '-') d->p++;
    if (d->p >= d->end || *d->p < '0' || *d->p > '9') return 0;
    while (d->p < d->end && *d->p >= '0' && *d->p <= '9') d->p++;
    if (d->p < d->end && *d->p == '.') {
        d->p++;
        if (d->p >= d->end || *d->p < '0' || *d->p > '9') return 0;
        while (d->p < d->end && *d->p >= '0' && *d->p <= '9') d->p++;
    }
    if (d->p < d->end && (*d->p == 'e' || *d->p == 'E')) {
        d->p++;
        if (d->p < d->end && (*d->p == '+' || *d->p == '-')) d->p++;
        if (d->p >= d->end || *d->p < '0' || *d->p > '9') return 0;
        while (d->p < d->end && *d->p >= '0' && *d->p <= '9') d->p++;
    }
    char lit[64];
    size_t n = (size_t)(d->p - s);
    if (n >= sizeof lit)
        return 0;                       /* long literals: the Lua decoder's call */
    memcpy(lit, s, n);
    lit[n] = '\0';
    return lua_stringtonumber(d->L, lit) == n + 1;
}

static int decode_array(decoder *d)
{
    lua_State *L = d->L;
    lua_newtable(L);
    skip_space(d);
    if (d->p < d->end && *d->p == ']') {
        d->p++;
        lua_pushvalue(L, d->empty_array);
        lua_setmetatable(L, -2);
        return 1;
    }
    for (lua_Integer i = 1;; i++) {
        if (!decode_value(d))
            return 0;
        lua_rawseti(L, -2, i);
        skip_space(d);
        if (d->p >= d->end)
            return 0;
        char c = *d->p++;
        if (c == ']')
            return 1;
        if (c != ',')
            return 0;
    }
}

static int decode_object(decoder *d)
{
    lua_State *L = d->L;
    lua_newtable(L);
    int obj = lua_gettop(L), keys = 0;
    lua_Integer nkeys = 0;
    if (!lua_isnil(L, d->order)) {      /* order[obj] = keys, kept on the stack */
        lua_newtable(L);
        keys = lua_gettop(L);
        lua_pushvalue(L, obj);
        lua_pushvalue(L, keys);
        lua_rawset(L, d->order);
    }
    skip_space(d);
    if (d->p < d->end && *d->p == '}') {
        d->p++;
        lua_settop(L, obj);
        return 1;
    }
    for (;;) {
        skip_space(d);
        if (d->p >= d->end || *d->p != '"')
            return 0;
        d->p++;
        if (!decode_string(d))
            return 0;
        skip_space(d);
        if (d->p >= d->end || *d->p != ':')
            return 0;
        d->p++;
        if (keys) {                     /* a repeated key keeps its first place */
            lua_pushvalue(L, -1);
            if (lua_rawget(L, obj) == LUA_TNIL) {
                lua_pushvalue(L, -2);
                lua_rawseti(L, keys, ++nkeys);
            }
            lua_pop(L, 1);
        }
        if (!decode_value(d))
            return 0;
        lua_rawset(L, obj);
        skip_space(d);
        if (d->p >= d->end)
            return 0;
        char c = *d->p++;
        if (c == '}') {
            lua_settop(L, obj);
            return 1;
        }
        if (c != ',')
            return 0;
    }
}

static int literal(decoder *d, const char *word, size_t n)
{
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0)
        return 0;
    d->p += n;
    return 1;
}

/* An object or an array, one level deeper, at d->p (on its opening bracket). */
static int decode_nested(decoder *d, int (*decode)(decoder *))
{
    d->p++;
    d->depth++;
    int ok = decode(d);
    d->depth--;
    return ok;
}

static int decode_value(decoder *d)
{
    skip_space(d);
    if (d->p >= d->end || d->depth > MAX_DEPTH)
        return 0;
    luaL_checkstack(d->L, 6, "JSON nesting");
    switch (*d->p) {
    case '{':
        return decode_nested(d, decode_object);
    case '[':
        return decode_nested(d, decode_array);
    case '"':
        d->p++;
        return decode_string(d);
    case 't':
        if (!literal(d, "true", 4)) return 0;
        lua_pushboolean(d->L, 1);
        return 1;
    case 'f':
        if (!literal(d, "false", 5)) return 0;
        lua_pushboolean(d->L, 0);
        return 1;
    case 'n':
        if (!literal(d, "null", 4)) return 0;
        lua_pushvalue(d->L, d->null);
        return 1;
    default:
        return decode_number(d);
    }
}

int sesh_core_json_decode(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checkany(L, 3);
    luaL_checktype(L, 4, LUA_TTABLE);
    lua_settop(L, 4);
    decoder d = { .L = L, .p = text, .end = text + len, .order = 2, .null = 3, .empty_array = 4 };
    int ok = decode_value(&d);
    if (ok) {
        skip_space(&d);
        ok = d.p == d.end;
    }
    if (!ok) {
        lua_settop(L, 4);
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, -2);
    return 2;
}
