/*
 * sesh.c — the `sesh` command line: lua's, with sesh's libraries.
 *
 *   sesh [options] [script [args]]
 *
 * Options, run order and exit status follow lua.c so that sesh can stand in
 * for lua5.4 anywhere: -e stat, -l mod, -l g=mod, -i, -v, -E, -W, --, -.
 * The host itself (state, libraries, paths, the runner) comes from libsesh;
 * the console from console.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "console.h"
#include "libsesh.h"
#include "sesh.h"

static const char *progname = "sesh";
static sesh *globalS;                 /* the host */

/* Option bits found by collect_args. */
enum {
    HAS_ERROR = 1,        /* bad option */
    HAS_I = 2,            /* -i */
    HAS_V = 4,            /* -v */
    HAS_E = 8,            /* -e */
    HAS_BIG_E = 16,       /* -E */
    HAS_HELP = 32         /* --help */
};

/* lua's usage, with --help added. */
static void print_options(FILE *f)
{
    fprintf(f,
        "usage: %s [options] [script [args]]\n"
        "Available options are:\n"
        "  -e stat   execute string 'stat'\n"
        "  -i        enter interactive mode after executing 'script'\n"
        "  -l mod    require library 'mod' into global 'mod'\n"
        "  -l g=mod  require library 'mod' into global 'g'\n"
        "  -v        show version information\n"
        "  -E        ignore environment variables\n"
        "  -W        turn warnings on\n"
        "  --help    show this help\n"
        "  --        stop handling options\n"
        "  -         stop handling options and execute stdin\n",
        progname);
}

static void print_usage(const char *badoption)
{
    fprintf(stderr, "%s: ", progname);
    if (badoption[1] == 'e' || badoption[1] == 'l')
        fprintf(stderr, "'%s' needs argument\n", badoption);
    else
        fprintf(stderr, "unrecognized option '%s'\n", badoption);
    print_options(stderr);
    fflush(stderr);
}

/* --help: lua's usage, then what sesh adds (README.md is the reference). */
static void print_help(void)
{
    print_options(stdout);
    printf(
        "\n"
        "sesh is lua 5.4 with the sessions module (Python in sandboxed sessions of a\n"
        "pool: Azure Container Apps dynamic sessions, or the local sesh-pool) and its\n"
        "libraries (llm, agent, mcp, pretty, cjson) ready to require.\n"
        "\n"
        "Console: with no script on a terminal (or -i after one). History in\n"
        "  $XDG_STATE_HOME/sesh/history, Tab completes, tables are pretty-printed,\n"
        "  Ctrl-C stops what runs, Ctrl-D leaves; the global `sessions` is loaded.\n"
        "Python mode: a line starting with %% runs as Python in the console's own\n"
        "  session (made on first use, closed on exit); a line ending in : or \\, or %%\n"
        "  or %%%% alone, starts a cell that an empty line ends; Tab completes from\n"
        "  the session (IPython's completer); Out[n] is the cell's execution count.\n"
        "  require(\"console\").session is that session, .options its sessions.new options.\n"
        "\n"
        "Environment:\n"
        "  LUA_INIT_5_4, LUA_INIT, LUA_PATH, LUA_CPATH   as for lua5.4\n"
        "  POOL_MANAGEMENT_ENDPOINT   the pool (else the local pool, started on demand)\n"
        "  SESH_TOKEN, SESH_TOKEN_FILE   the token for that endpoint (a sesh-pool started\n"
        "                             by hand); without one, Azure sign-in (AZURE_*)\n"
        "  SSL_CERT_FILE, CURL_CA_BUNDLE   the CA bundle https trusts\n"
        "  SESH_POOL, SESH_POOL_ARGS, SESH_POOL_IDLE_EXIT   the local pool: binary,\n"
        "                             options (e.g. --max-upload BYTES), idle seconds\n"
        "  SESH_LOG=debug|info|warn|error   log lines on stderr (default warn)\n"
        "  SESH_IMAGES=kitty|iterm|file|off, SESH_IMAGE_DIR   images in the console\n"
        "  OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_MODEL, AZURE_OPENAI_*   the model of\n"
        "                             the llm and agent libraries\n"
        "  NO_COLOR                   no colours\n"
        "See README.md for the whole reference.\n");
    fflush(stdout);
}

static void sesh_message(const char *msg)
{
    if (progname)
        fprintf(stderr, "%s: ", progname);
    fprintf(stderr, "%s\n", msg);
    fflush(stderr);
}

static int sesh_report(lua_State *L, int status)
{
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        sesh_message(msg ? msg : "(error object is not a string)");
        lua_pop(L, 1);
    }
    return status;
}

/* The host's protected call, under Ctrl-C (libsesh's runner). */
static int docall(lua_State *L, int narg, int nres)
{
    (void)L;                          /* the host's own state */
    return sesh_run(globalS, narg, nres, 0);
}

static void print_version(void)
{
    printf("sesh %s  (%s)  Python sessions from Lua\n", SESH_VERSION, LUA_COPYRIGHT);
    fflush(stdout);
}

/* arg: the script at 0, its arguments after, interpreter and options before. */
static void create_arg_table(lua_State *L, char **argv, int argc, int script)
{
    if (script == argc)
        script = 0;                          /* no script: the interpreter at 0 */
    lua_createtable(L, argc - script - 1, script + 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

static int do_chunk(lua_State *L, int status)
{
    if (status == LUA_OK)
        status = docall(L, 0, 0);
    return sesh_report(L, status);
}

static int do_file(lua_State *L, const char *name)
{
    return do_chunk(L, luaL_loadfile(L, name));
}

static int do_string(lua_State *L, const char *s, const char *name)
{
    return do_chunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

/* -l mod or -l g=mod: global g (or mod) = require(mod). */
static int do_library(lua_State *L, char *spec)
{
    char *mod = strchr(spec, '=');
    const char *global = spec;
    if (mod)
        *mod++ = '\0';
    else
        mod = spec;
    lua_getglobal(L, "require");
    lua_pushstring(L, mod);
    int status = docall(L, 1, 1);
    if (status == LUA_OK)
        lua_setglobal(L, global);
    return sesh_report(L, status);
}

static int push_args(lua_State *L)
{
    if (lua_getglobal(L, "arg") != LUA_TTABLE)
        luaL_error(L, "'arg' is not a table");
    int n = (int)luaL_len(L, -1);
    luaL_checkstack(L, n + 3, "too many arguments to script");
    for (int i = 1; i <= n; i++)
        lua_rawgeti(L, -i, i);
    lua_remove(L, -n - 1);
    return n;
}

static int handle_script(lua_State *L, char **argv)
{
    const char *name = argv[0];
    if (strcmp(name, "-") == 0 && strcmp(argv[-1], "--") != 0)
        name = NULL;                         /* stdin */
    int status = luaL_loadfile(L, name);
    if (status == LUA_OK) {
        int n = push_args(L);
        status = docall(L, n, LUA_MULTRET);
    }
    return sesh_report(L, status);
}

/* Scans the options; *first gets the index of the script (argc if none). */
static int collect_args(char **argv, int *first)
{
    int args = 0, i;
    if (argv[0] == NULL) {
        *first = 0;
        return 0;
    }
    for (i = 1; argv[i] != NULL; i++) {
        *first = i;
        if (argv[i][0] != '-')
            return args;
        switch (argv[i][1]) {
        case '-':
            if (strcmp(argv[i], "--help") == 0)
                return HAS_HELP;
            if (argv[i][2] != '\0')
                return HAS_ERROR;
            *first = i + 1;
            return args;
        case '\0':
            return args;                     /* '-': the script is stdin */
        case 'E':
            if (argv[i][2] != '\0')
                return HAS_ERROR;
            args |= HAS_BIG_E;
            break;
        case 'W':
            if (argv[i][2] != '\0')
                return HAS_ERROR;
            break;
        case 'i':
            args |= HAS_I;                   /* -i implies -v */
            /* fall through */
        case 'v':
            if (argv[i][2] != '\0')
                return HAS_ERROR;
            args |= HAS_V;
            break;
        case 'e':
            args |= HAS_E;
            /* fall through */
        case 'l':
            if (argv[i][2] == '\0') {
                i++;
                if (argv[i] == NULL || argv[i][0] == '-')
                    return HAS_ERROR;
            }
            break;
        default:
            return HAS_ERROR;
        }
    }
    *first = i;
    return args;
}

/* Runs -e, -l and -W in order; 0 if one of them failed. */
static int run_args(lua_State *L, char **argv, int n)
{
    for (int i = 1; i < n; i++) {
        int option = argv[i][1];
        switch (option) {
        case 'e':
        case 'l': {
            char *extra = argv[i] + 2;
            if (*extra == '\0')
                extra = argv[++i];
            int status = option == 'e' ? do_string(L, extra, "=(command line)")
                                       : do_library(L, extra);
            if (status != LUA_OK)
                return 0;
            break;
        }
        case 'W':
            lua_warning(L, "@on", 0);
            break;
        }
    }
    return 1;
}

static int handle_luainit(lua_State *L)
{
    const char *name = "=LUA_INIT_5_4";
    const char *init = getenv(name + 1);
    if (init == NULL) {
        name = "=LUA_INIT";
        init = getenv(name + 1);
    }
    if (init == NULL)
        return LUA_OK;
    if (init[0] == '@')
        return do_file(L, init + 1);
    return do_string(L, init, name);
}

/* Everything after the state exists, in protected mode (lua.c's pmain). */
static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = lua_touserdata(L, 2);
    int script;
    int args = collect_args(argv, &script);
    luaL_checkversion(L);
    if (args == HAS_ERROR) {
        print_usage(argv[script]);
        return 0;
    }
    if (args == HAS_HELP) {
        print_help();
        lua_pushboolean(L, 1);
        return 1;
    }
    if (args & HAS_V)
        print_version();
    create_arg_table(L, argv, argc, script);
    if (!(args & HAS_BIG_E) && handle_luainit(L) != LUA_OK)
        return 0;
    if (!run_args(L, argv, script))
        return 0;
    if (script < argc && handle_script(L, argv + script) != LUA_OK)
        return 0;
    if (args & HAS_I) {
        sesh_console(globalS);
    } else if (script == argc && !(args & (HAS_E | HAS_V))) {
        if (isatty(STDIN_FILENO)) {
            print_version();
            sesh_console(globalS);
        } else {
            do_file(L, NULL);
        }
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int has_option(char **argv, int upto, const char *option)
{
    for (int i = 1; i < upto && argv[i]; i++) {
        if (strcmp(argv[i], "--") == 0 || strcmp(argv[i], "-") == 0 || argv[i][0] != '-')
            break;
        if (strcmp(argv[i], option) == 0)
            return 1;
        if ((argv[i][1] == 'e' || argv[i][1] == 'l') && argv[i][2] == '\0')
            i++;                             /* skip the option's argument */
    }
    return 0;
}

int main(int argc, char **argv)
{
    sesh_config config = { 0 };
    if (argv[0] && argv[0][0]) {
        const char *slash = strrchr(argv[0], '/');
        progname = slash ? slash + 1 : argv[0];
    }
    config.progname = progname;
    config.ignore_env = has_option(argv, argc, "-E");
    globalS = sesh_open(&config);
    if (globalS == NULL) {
        sesh_message("cannot create state: not enough memory");
        return EXIT_FAILURE;
    }
    lua_State *L = sesh_lua(globalS);
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = lua_pcall(L, 2, 1, 0);
    int ok = lua_toboolean(L, -1);
    sesh_report(L, status);
    sesh_close(globalS);
    return (ok && status == LUA_OK) ? EXIT_SUCCESS : EXIT_FAILURE;
}
