/*
 * ljson.c — core.json_decode: the JSON decoder of sesh's Lua side (sessions.json
 * is its face; nothing else decodes JSON).
 *
 *   core.json_decode(text, order, null, empty_array) -> value | nil, message
 *
 * What lua-cjson cannot do, and the pool API and LLM answers need: integers
 * stay integers (42, not 42.0), an empty array is told from an empty object,
 * and the key order of objects can be kept:
 *
 *   order        nil, or a table that gets object -> { key, ... } in text order
 *   null         the value that stands for JSON null
 *   empty_array  the metatable that marks an empty array apart from {}
 *
 * The grammar is RFC 8259's, plus NaN, Infinity and -Infinity as Python's json
 * writes them. A number with a fraction or an exponent is a float, an integer
 * that fits is an integer, a bigger one a float. A text that is not JSON gets a
 * message with its place: "invalid JSON at byte 12 (line 1): expected ':' after
 * key". Nesting is bounded (MAX_DEPTH), so no text can exhaust the C stack.
 */
#include "binding/binding.h"

#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 1000

typedef struct {
    lua_State *L;
    const char *text, *p, *end;
    int depth;
    int order, null, empty_array;   /* stack indices of the arguments */
    const char *why;                /* the first error, and where it is */
    const char *at;
    char detail[48];                /* room for "unexpected character 'x'" */
} decoder;

static int decode_value(decoder *d);

static int fail(decoder *d, const char *at, const char *why)
{
    d->why = why;
    d->at = at;
    return 0;
}

static void skip_space(decoder *d)
{
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
        d->p++;
}

static int hex4(const char *s, const char *end, unsigned *out)
{
    unsigned v = 0;
    if (end - s < 4)
        return 0;
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

/* A \u escape, d->p just past the 'u'; a surrogate pair is joined, a lone half
 * is written as it is (three bytes, as utf8.char writes it). */
static int unicode_escape(decoder *d, luaL_Buffer *b)
{
    unsigned cp, lo;
    if (!hex4(d->p, d->end, &cp))
        return fail(d, d->p - 2, "bad \\u escape");
    d->p += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF && d->end - d->p >= 6 && d->p[0] == '\\' &&
        d->p[1] == 'u' && hex4(d->p + 2, d->end, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
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

/* One escape, d->p on the character after the backslash. */
static int escape(decoder *d, luaL_Buffer *b)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *hit = memchr(from, *d->p, sizeof from - 1);
    if (hit) {
        luaL_addchar(b, to[hit - from]);
        d->p++;
        return 1;
    }
    if (*d->p == 'u') {
        d->p++;
        return unicode_escape(d, b);
    }
    return fail(d, d->p - 1, "bad escape in string");
}

/* A string, d->p just past its opening quote; pushed. */
static int decode_string(decoder *d)
{
    const char *start = d->p;
    while (d->p < d->end && *d->p != '"' && *d->p != '\\')
        d->p++;
    if (d->p < d->end && *d->p == '"') {    /* no escape: most strings */
        lua_pushlstring(d->L, start, (size_t)(d->p - start));
        d->p++;
        return 1;
    }
    luaL_Buffer b;
    luaL_buffinit(d->L, &b);
    luaL_addlstring(&b, start, (size_t)(d->p - start));
    while (d->p < d->end) {
        const char *run = d->p;
        while (d->p < d->end && *d->p != '"' && *d->p != '\\')
            d->p++;
        luaL_addlstring(&b, run, (size_t)(d->p - run));
        if (d->p >= d->end)
            break;
        if (*d->p++ == '"') {
            luaL_pushresult(&b);
            return 1;
        }
        if (d->p >= d->end)
            break;
        if (!escape(d, &b)) {
            luaL_pushresult(&b);    /* the buffer may hold a box on the stack */
            lua_pop(d->L, 1);
            return 0;
        }
    }
    luaL_pushresult(&b);
    lua_pop(d->L, 1);
    return fail(d, start - 1, "unterminated string");
}

static const char *digits(const char *p, const char *end)
{
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    return p;
}

/* A number of JSON's grammar, converted by Lua itself: an integer literal that
 * fits is an integer, anything else a float. */
static int decode_number(decoder *d)
{
    const char *s = d->p, *p = s, *end = d->end;
    if (p < end && *p == '-')
        p++;
    if (p >= end || *p < '0' || *p > '9')
        return fail(d, s, NULL);            /* not a number at all: the caller says what */
    p = *p == '0' ? p + 1 : digits(p, end);
    if (p < end && *p == '.') {
        const char *q = digits(p + 1, end);
        if (q == p + 1)
            return fail(d, s, "bad number (no digit after the point)");
        p = q;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        const char *q = p + 1;
        if (q < end && (*q == '+' || *q == '-'))
            q++;
        const char *r = digits(q, end);
        if (r == q)
            return fail(d, s, "bad number (no digit in the exponent)");
        p = r;
    }
    if (p < end && *p >= '0' && *p <= '9')
        return fail(d, s, "bad number (a leading zero)");
    size_t n = (size_t)(p - s);
    char lit[64];
    int ok;
    if (n < sizeof lit) {
        memcpy(lit, s, n);
        lit[n] = '\0';
        ok = lua_stringtonumber(d->L, lit) == n + 1;
    } else {                                /* a long literal: rare, copied in Lua */
        lua_pushlstring(d->L, s, n);
        ok = lua_stringtonumber(d->L, lua_tostring(d->L, -1)) == n + 1;
        lua_remove(d->L, ok ? -2 : -1);
    }
    if (!ok)
        return fail(d, s, "bad number");
    d->p = p;
    return 1;
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
        if (d->p < d->end && *d->p == ']') {
            d->p++;
            return 1;
        }
        if (d->p >= d->end || *d->p != ',')
            return fail(d, d->p, "expected ',' or ']' in array");
        d->p++;
    }
}

static int decode_object(decoder *d)
{
    lua_State *L = d->L;
    lua_newtable(L);
    int obj = lua_gettop(L), keys = 0;
    lua_Integer nkeys = 0;
    if (!lua_isnil(L, d->order)) {          /* order[obj] = keys, kept on the stack */
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
            return fail(d, d->p, "expected a string key");
        d->p++;
        if (!decode_string(d))
            return 0;
        skip_space(d);
        if (d->p >= d->end || *d->p != ':')
            return fail(d, d->p, "expected ':' after key");
        d->p++;
        if (keys) {                         /* a repeated key keeps its first place */
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
        if (d->p < d->end && *d->p == '}') {
            d->p++;
            lua_settop(L, obj);
            return 1;
        }
        if (d->p >= d->end || *d->p != ',')
            return fail(d, d->p, "expected ',' or '}' in object");
        d->p++;
    }
}

/* A word at d->p: true, false, null and Python's NaN, Infinity, -Infinity. */
static int literal(decoder *d)
{
    static const struct { const char *word; int kind; } words[] = {
        {"true", 't'}, {"false", 'f'}, {"null", 'n'},
        {"NaN", 'N'}, {"Infinity", 'I'}, {"-Infinity", '-'},
    };
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        size_t n = strlen(words[i].word);
        if ((size_t)(d->end - d->p) < n || memcmp(d->p, words[i].word, n) != 0)
            continue;
        d->p += n;
        switch (words[i].kind) {
        case 't': lua_pushboolean(d->L, 1); break;
        case 'f': lua_pushboolean(d->L, 0); break;
        case 'n': lua_pushvalue(d->L, d->null); break;
        case 'N': lua_pushnumber(d->L, NAN); break;
        case 'I': lua_pushnumber(d->L, HUGE_VAL); break;
        default:  lua_pushnumber(d->L, -HUGE_VAL); break;
        }
        return 1;
    }
    return 0;
}

static int unexpected(decoder *d)
{
    unsigned char c = (unsigned char)*d->p;
    if (c >= 0x20 && c < 0x7f)
        snprintf(d->detail, sizeof d->detail, "unexpected character '%c'", c);
    else
        snprintf(d->detail, sizeof d->detail, "unexpected byte 0x%02x", c);
    return fail(d, d->p, d->detail);
}

/* An object or an array one level deeper, d->p on its opening bracket. */
static int decode_nested(decoder *d, int (*decode)(decoder *))
{
    if (d->depth >= MAX_DEPTH)
        return fail(d, d->p, "nested deeper than 1000 levels");
    d->p++;
    d->depth++;
    int ok = decode(d);
    d->depth--;
    return ok;
}

static int decode_value(decoder *d)
{
    skip_space(d);
    if (d->p >= d->end)
        return fail(d, d->p, "unexpected end of text");
    luaL_checkstack(d->L, 6, "JSON nesting");
    switch (*d->p) {
    case '{':
        return decode_nested(d, decode_object);
    case '[':
        return decode_nested(d, decode_array);
    case '"':
        d->p++;
        return decode_string(d);
    case 't': case 'f': case 'n': case 'N': case 'I':
        return literal(d) || fail(d, d->p, "unexpected word");
    default:
        if (literal(d) || decode_number(d))
            return 1;
        return d->why ? 0 : unexpected(d);
    }
}

/* Pushes nil and "invalid JSON at byte N (line L): why". */
static int push_failure(decoder *d)
{
    int line = 1;
    for (const char *c = d->text; c < d->at; c++)
        line += *c == '\n';
    lua_pushnil(d->L);
    lua_pushfstring(d->L, "invalid JSON at byte %d (line %d): %s",
                    (int)(d->at - d->text) + 1, line, d->why);
    return 2;
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
    decoder d = { .L = L, .text = text, .p = text, .end = text + len,
                  .order = 2, .null = 3, .empty_array = 4 };
    if (!decode_value(&d)) {
        lua_settop(L, 4);
        return push_failure(&d);
    }
    skip_space(&d);
    if (d.p != d.end) {
        lua_settop(L, 4);
        fail(&d, d.p, "trailing characters after the value");
        return push_failure(&d);
    }
    return 1;
}
