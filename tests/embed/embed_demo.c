/*
 * embed_demo.c — a C program embedding sesh through the installed libsesh,
 * built with `pkg-config --cflags --libs sesh`. It checks what it gets and
 * exits non-zero, saying why, when something is off.
 *
 *   embed_demo workflow.lua     runs the workflow in a host of its own, with
 *                               print routed to a callback, and more checks
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>
#include <sesh.h>

static int failures;

#define CHECK(cond, ...) do { if (!(cond)) { failures++; \
    fprintf(stderr, "embed_demo: FAIL %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

/* What the host printed, gathered by the output callback. */
typedef struct {
    char *data;
    size_t len;
} buffer;

static void collect(void *ud, const char *data, size_t len)
{
    buffer *b = ud;
    char *grown = realloc(b->data, b->len + len + 1);
    if (grown == NULL)
        abort();
    memcpy(grown + b->len, data, len);
    b->data = grown;
    b->len += len;
    b->data[b->len] = '\0';
}

static char last_log[256];

static void log_line(void *ud, const char *level, const char *line)
{
    (void)ud;
    snprintf(last_log, sizeof last_log, "%s|%s", level, line);
}

static sesh *alarmed;

static void on_alarm(int sig)
{
    (void)sig;
    sesh_interrupt(alarmed);      /* safe in a signal handler, says sesh.h */
}

/* sesh_interrupt stops a chunk that would never end. */
static void interrupt_host(sesh *S)
{
    alarmed = S;
    signal(SIGALRM, on_alarm);
    alarm(1);
    int failed = sesh_dostring(S, "while true do end", "=forever");
    alarm(0);
    CHECK(failed && strstr(sesh_error(S), "interrupted!") != NULL,
          "interrupt: [%s]", sesh_error(S));
    CHECK(sesh_dostring(S, "x = 1", NULL) == 0, "after an interrupt: %s", sesh_error(S));
}

/* A host of its own: run the workflow file, route output and log lines. */
static void own_host(const char *workflow)
{
    buffer out = { NULL, 0 };
    sesh_config config = { 0 };
    config.progname = "embed_demo";
    config.output = collect;
    config.output_ud = &out;
    config.log = log_line;
    sesh *S = sesh_open(&config);
    CHECK(S != NULL, "sesh_open failed");
    if (S == NULL)
        return;

    CHECK(sesh_dostring(S, "print('hello', 42) io.write('a', 1, '\\n')", "=hello") == 0,
          "dostring: %s", sesh_error(S));
    CHECK(out.data && strcmp(out.data, "hello\t42\na1\n") == 0,
          "output callback got [%s]", out.data ? out.data : "(nothing)");

    CHECK(sesh_dostring(S, "require('sessions.host').log('info', 'a log line')", NULL) == 0,
          "log: %s", sesh_error(S));
    CHECK(strcmp(last_log, "info|a log line") == 0, "log callback got [%s]", last_log);

    CHECK(sesh_dostring(S, "local function f() error('deliberate') end f()", "=failing") != 0,
          "an error must be reported");
    CHECK(strstr(sesh_error(S), "failing:1: deliberate") != NULL
          && strstr(sesh_error(S), "stack traceback:") != NULL,
          "error text: [%s]", sesh_error(S));

    CHECK(sesh_dostring(S, "x = = 1", "=syntax") != 0 && strstr(sesh_error(S), "syntax:1:"),
          "syntax error text: [%s]", sesh_error(S));
    CHECK(sesh_dofile(S, "/nonexistent/file.lua") != 0 && strstr(sesh_error(S), "cannot open"),
          "missing file: [%s]", sesh_error(S));

    free(out.data);
    out.data = NULL;
    out.len = 0;
    CHECK(sesh_dofile(S, workflow) == 0, "workflow: %s", sesh_error(S));
    CHECK(strcmp(sesh_error(S), "") == 0, "error after success: [%s]", sesh_error(S));
    fputs(out.data ? out.data : "", stdout);
    CHECK(out.data && strstr(out.data, "result: 42\n") != NULL, "workflow printed [%s]",
          out.data ? out.data : "(nothing)");

    interrupt_host(S);

    lua_State *L = sesh_lua(S);
    lua_getglobal(L, "workflow_answer");
    CHECK(lua_tointeger(L, -1) == 42, "workflow_answer is %s", luaL_typename(L, -1));
    lua_pop(L, 1);

    int top = lua_gettop(L);
    luaL_loadstring(L, "local a, b = ... return a + b");
    lua_pushinteger(L, 40);
    lua_pushinteger(L, 2);
    CHECK(sesh_pcall(S, 2, 1) == LUA_OK && lua_tointeger(L, -1) == 42, "sesh_pcall: %s",
          sesh_error(S));
    lua_settop(L, top);
    lua_getglobal(L, "error");
    lua_pushliteral(L, "raised through sesh_pcall");
    CHECK(sesh_pcall(S, 1, 0) == LUA_ERRRUN, "sesh_pcall must fail");
    CHECK(lua_isstring(L, -1) && strstr(lua_tostring(L, -1), "raised through sesh_pcall")
          && strstr(lua_tostring(L, -1), "stack traceback:")
          && strcmp(lua_tostring(L, -1), sesh_error(S)) == 0,
          "sesh_pcall error: [%s]", lua_tostring(L, -1));
    lua_settop(L, top);

    sesh_close(S);
    free(out.data);
}

/* An application's own lua_State with the module added. */
static void own_state(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "sessions", luaopen_sessions, 1);
    CHECK(lua_istable(L, -1), "luaopen_sessions returned a %s", luaL_typename(L, -1));
    lua_pop(L, 1);
    int status = luaL_dostring(L, "return type(sessions.new), require('cjson').encode({1}), "
                                  "require('pretty')({ a = 1 })");
    CHECK(status == LUA_OK, "own state: %s", lua_tostring(L, -1));
    if (status == LUA_OK) {
        CHECK(strcmp(lua_tostring(L, -3), "function") == 0, "sessions.new is %s", lua_tostring(L, -3));
        CHECK(strcmp(lua_tostring(L, -2), "[1]") == 0, "cjson gave %s", lua_tostring(L, -2));
        CHECK(strcmp(lua_tostring(L, -1), "{ a = 1 }") == 0, "pretty gave %s", lua_tostring(L, -1));
    }
    lua_close(L);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: embed_demo workflow.lua\n");
        return 2;
    }
    own_host(argv[1]);
    own_state();
    CHECK(strcmp(SESH_VERSION, "0.1.0") == 0, "version %s", SESH_VERSION);
    sesh_close(NULL);
    if (failures == 0)
        printf("embed_demo: all checks passed\n");
    return failures ? 1 : 0;
}
