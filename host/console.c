/*
 * console.c — sesh's interactive console: lua.c's REPL (continuation lines,
 * `=expr`, expressions printed, _PROMPT/_PROMPT2) on readline, with a
 * persistent history, tab completion and Ctrl-C that returns to the prompt.
 *
 * What is better said in Lua lives in lua/console.lua: how results are shown
 * (pretty printer), what completes a word, and Python mode (`%` lines sent to
 * the console's session). This file reads lines, compiles chunks and calls
 * into that module; when it cannot be loaded the console still works, plainly.
 */
#include "console.h"
#include "libsesh.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <readline/readline.h>
#include <readline/history.h>

#include <lauxlib.h>

#include "common/common.h"

#define MAX_INPUT_LINE 4096          /* without readline: longest line read at once */
#define HISTORY_LINES 1000           /* entries kept in the history file */
#define HISTORY_ENTRY_MAX 65536      /* a bigger paste is run, not remembered */
#define CONSOLE_MODULE "console"     /* lua/console.lua */

static lua_State *consoleL;          /* the state completion runs in */
static sesh *consoleS;               /* its host, for the runner */
static volatile sig_atomic_t prompt_interrupted;
static char history_path[PATH_MAX];


/* --- reading a line ------------------------------------------------------ */

static int use_readline(void)
{
    return isatty(STDIN_FILENO);
}

static void on_prompt_sigint(int sig)
{
    (void)sig;
    prompt_interrupted = 1;
}

/* What readline's line callback delivered, and whether it has. */
static char *delivered;
static int line_done;

static void line_handler(char *line)
{
    delivered = line;
    line_done = 1;
    rl_callback_handler_remove();    /* no prompt until we ask for the next line */
}

/* Reads one line with readline's callback interface, so that Ctrl-C at the
 * prompt abandons the line instead of killing the console. Returns a malloc'd
 * line, NULL at end of input; *interrupted is set on Ctrl-C. */
static char *readline_interruptible(const char *prompt, int *interrupted)
{
    struct sigaction sa = { 0 }, old;
    sigset_t block, outside;
    sa.sa_handler = on_prompt_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    /* SIGINT stays blocked but inside ppoll, so it cannot slip in between a
     * check of the flag and the wait for the next key */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &outside);
    sigset_t waiting = outside;
    sigdelset(&waiting, SIGINT);
    prompt_interrupted = 0;
    line_done = 0;
    delivered = NULL;
    rl_callback_handler_install(prompt, line_handler);
    while (!line_done) {
        struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
        int n = ppoll(&pfd, 1, NULL, &waiting);
        if (prompt_interrupted) {
            /* ^C after what was typed, as a shell shows it: leaving the
             * callback interface returns to the line's start, so it goes first */
            rl_point = rl_end;
            rl_redisplay();
            fputs("^C", stdout);
            fflush(stdout);
            rl_free_line_state();
            rl_callback_sigcleanup();
            rl_callback_handler_remove();
            fputs("\n", stdout);
            fflush(stdout);
            *interrupted = 1;
            break;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        rl_callback_read_char();
    }
    sigprocmask(SIG_SETMASK, &outside, NULL);
    sigaction(SIGINT, &old, NULL);
    return line_done ? delivered : NULL;
}

/* Without a terminal: the prompt, then a plain line (lua.c without readline). */
static char *fgets_line(const char *prompt)
{
    char buffer[MAX_INPUT_LINE];
    fputs(prompt, stdout);
    fflush(stdout);
    if (fgets(buffer, sizeof buffer, stdin) == NULL)
        return NULL;
    size_t len = strlen(buffer);
    if (len > 0 && buffer[len - 1] == '\n')
        buffer[len - 1] = '\0';
    return strdup(buffer);
}

static const char *get_prompt(lua_State *L, int firstline)
{
    if (lua_getglobal(L, firstline ? "_PROMPT" : "_PROMPT2") == LUA_TNIL)
        return firstline ? "> " : ">> ";
    const char *p = luaL_tolstring(L, -1, NULL);
    lua_remove(L, -2);               /* keep the string, drop the value */
    return p;
}

/* Pushes the next line, or returns 0 at end of input. A Ctrl-C at the prompt
 * pushes nothing and sets *interrupted. */
static int push_line(lua_State *L, int firstline, int *interrupted)
{
    const char *prompt = get_prompt(L, firstline);
    char *line = use_readline() ? readline_interruptible(prompt, interrupted)
                                : fgets_line(prompt);
    lua_pop(L, 1);                   /* the prompt */
    if (line == NULL)
        return 0;
    lua_pushstring(L, line);
    free(line);
    return 1;
}


/* --- history ------------------------------------------------------------- */

/* $XDG_STATE_HOME/sesh/history, or ~/.local/state/sesh/history. */
static int find_history_path(char *buf, size_t size)
{
    const char *state = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    char dir[PATH_MAX];
    int n;
    if (state && state[0] == '/')
        n = snprintf(dir, sizeof dir, "%s/sesh", state);
    else if (home && home[0])
        n = snprintf(dir, sizeof dir, "%s/.local/state/sesh", home);
    else
        return 0;
    if (n < 0 || (size_t)n >= sizeof dir || sesh_mkdirs(dir, 0700) != 0)
        return 0;
    n = snprintf(buf, size, "%s/history", dir);
    return n > 0 && (size_t)n < size;
}

static void history_open(void)
{
    using_history();
    stifle_history(HISTORY_LINES);
    /* a chunk of several lines is one entry: timestamps mark where entries begin */
    history_comment_char = '#';
    history_write_timestamps = 1;
    history_multiline_entries = 1;
    if (!find_history_path(history_path, sizeof history_path)) {
        history_path[0] = '\0';
        return;
    }
    read_history(history_path);      /* missing on a first run: nothing to read */
}

/* Every entry is written at once, so a console that is killed loses nothing. */
static void history_add(const char *line)
{
    if (!use_readline() || line[0] == '\0' || strlen(line) > HISTORY_ENTRY_MAX)
        return;
    HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
    if (last && strcmp(last->line, line) == 0)
        return;                      /* no runs of the same line */
    add_history(line);
    if (history_path[0] == '\0')
        return;
    int fd_exists = access(history_path, F_OK) == 0;
    if (!fd_exists) {
        FILE *f = fopen(history_path, "a");       /* append_history needs a file */
        if (f)
            fclose(f);
        chmod(history_path, 0600);
    }
    append_history(1, history_path);
}

static void history_close(void)
{
    if (history_path[0])
        history_truncate_file(history_path, HISTORY_LINES);
}


/* --- the Lua side: lua/console.lua -------------------------------------- */

static void history_add(const char *line);

/* console.read(prompt): a line, nil at end of input, nil, "interrupted".
 * The line is not remembered: the caller knows what makes one entry. */
static int l_read(lua_State *L)
{
    const char *prompt = luaL_optstring(L, 1, "> ");
    int interrupted = 0;
    char *line = use_readline() ? readline_interruptible(prompt, &interrupted)
                                : fgets_line(prompt);
    if (line == NULL) {
        lua_pushnil(L);
        if (!interrupted)
            return 1;
        lua_pushliteral(L, "interrupted");
        return 2;
    }
    lua_pushstring(L, line);
    free(line);
    return 1;
}

/* console.remember(text): one history entry (a Python cell, say). */
static int l_remember(lua_State *L)
{
    history_add(luaL_checkstring(L, 1));
    return 0;
}

/* Gives the module what only C can: line input, history, whether stdout is a
 * terminal. Done once, when the module is first loaded. */
static void equip_module(lua_State *L)
{
    if (lua_getfield(L, -1, "read") != LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, l_read);
    lua_setfield(L, -2, "read");
    lua_pushcfunction(L, l_remember);
    lua_setfield(L, -2, "remember");
    lua_pushboolean(L, isatty(STDOUT_FILENO));
    lua_setfield(L, -2, "tty");
}

/* Pushes console[name] (a function) or returns 0 when the module is missing;
 * the first time, says why on stderr. */
static int get_console_function(lua_State *L, const char *name)
{
    static int warned;
    lua_getglobal(L, "require");
    lua_pushliteral(L, CONSOLE_MODULE);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
        if (!warned++)
            fprintf(stderr, "sesh: the console's Lua part is missing (%s); going on plainly\n",
                    lua_isstring(L, -1) ? lua_tostring(L, -1) : "not a table");
        lua_pop(L, 1);
        return 0;
    }
    equip_module(L);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}


/* --- completion ----------------------------------------------------------- */

static char **completions;           /* what console.complete answered, NULL-ended */

static void free_completions(void)
{
    if (completions == NULL)
        return;
    for (char **p = completions; *p; p++)
        free(*p);
    free(completions);
    completions = NULL;
}

/* Asks console.complete(line, start, finish) for candidates; Lua errors are
 * swallowed: a completion must never break the line being typed. */
static void ask_completions(const char *line, int start, int finish)
{
    lua_State *L = consoleL;
    int top = lua_gettop(L);
    free_completions();
    if (!get_console_function(L, "complete"))
        return;
    lua_pushstring(L, line);
    lua_pushinteger(L, start + 1);
    lua_pushinteger(L, finish);
    if (lua_pcall(L, 3, 1, 0) == LUA_OK && lua_istable(L, -1)) {
        lua_Integer n = luaL_len(L, -1);
        completions = calloc((size_t)n + 1, sizeof *completions);
        for (lua_Integer i = 1; completions && i <= n; i++) {
            lua_rawgeti(L, -1, i);
            const char *s = lua_tostring(L, -1);
            completions[i - 1] = strdup(s ? s : "");
            lua_pop(L, 1);
        }
    }
    lua_settop(L, top);
}

static char *completion_generator(const char *text, int state)
{
    static int next;
    (void)text;
    if (state == 0)
        next = 0;
    if (completions == NULL || completions[next] == NULL)
        return NULL;
    return strdup(completions[next++]);
}

static char **attempt_completion(const char *text, int start, int finish)
{
    (void)text;
    rl_attempted_completion_over = 1;    /* never fall back to file names */
    rl_completion_append_character = '\0';   /* readline resets it before each attempt */
    ask_completions(rl_line_buffer, start, finish);
    return rl_completion_matches(text, completion_generator);
}

static void completion_open(lua_State *L)
{
    consoleL = L;
    rl_readline_name = "sesh";
    /* Ctrl-C is ours: readline's own handler would defer it to the next key */
    rl_catch_signals = 0;
    rl_basic_word_break_characters = " \t\n\"\\'`@$><=;|&{(+-*/%^~#,[]";
    rl_attempted_completion_function = attempt_completion;
}


/* --- the loop ------------------------------------------------------------- */

/* Whether a message says a Ctrl-C stopped the chunk (the hook's "interrupted!",
 * the transport's "interrupted by Ctrl-C"). */
static int is_interrupt_message(const char *msg)
{
    return msg && (strstr(msg, "interrupted!") || strstr(msg, "interrupted by Ctrl-C"));
}

static void report(lua_State *L, int status)
{
    if (status == LUA_OK)
        return;
    const char *msg = lua_tostring(L, -1);
    fflush(stdout);                  /* what was printed before the error comes first */
    if (use_readline() && is_interrupt_message(msg))
        fputs("\n", stderr);         /* below the ^C the terminal echoed */
    fprintf(stderr, "%s\n", msg ? msg : "(error object is not a string)");
    fflush(stderr);
    lua_pop(L, 1);
}

/* A syntax error at <eof>: the chunk is not finished yet. */
static int incomplete(lua_State *L, int status)
{
    static const char mark[] = "<eof>";
    size_t len;
    if (status != LUA_ERRSYNTAX)
        return 0;
    const char *msg = lua_tolstring(L, -1, &len);
    if (len >= sizeof mark - 1 && strcmp(msg + len - (sizeof mark - 1), mark) == 0) {
        lua_pop(L, 1);
        return 1;
    }
    return 0;
}

/* Tries the line as an expression: "return <line>". */
static int add_return(lua_State *L)
{
    const char *line = lua_tostring(L, -1);
    const char *retline = lua_pushfstring(L, "return %s;", line);
    int status = luaL_loadbuffer(L, retline, strlen(retline), "=stdin");
    if (status == LUA_OK) {
        lua_remove(L, -2);           /* the modified line */
    } else {
        lua_pop(L, 2);               /* the error and the modified line */
    }
    return status;
}

/* Reads more lines while the chunk on the stack is incomplete. */
static int multiline(lua_State *L, int *interrupted)
{
    for (;;) {
        size_t len;
        const char *line = lua_tolstring(L, 1, &len);
        int status = luaL_loadbuffer(L, line, len, "=stdin");
        if (!incomplete(L, status))
            return status;
        if (!push_line(L, 0, interrupted)) {
            if (!*interrupted)
                lua_pushliteral(L, "unfinished chunk at end of input");
            return LUA_ERRSYNTAX;
        }
        lua_pushliteral(L, "\n");
        lua_insert(L, -2);
        lua_concat(L, 3);            /* the chunk so far, "\n", the new line */
    }
}

/* Runs a Python-mode line (`%...`) through console.python. */
static int python_line(lua_State *L)
{
    if (!get_console_function(L, "python")) {
        lua_pushliteral(L, "Python mode needs lua/console.lua, which could not be loaded");
        return LUA_ERRRUN;
    }
    lua_pushvalue(L, 1);
    return sesh_run(consoleS, 1, 0, 1);
}

/* Reads a whole chunk and leaves it compiled on the stack. Returns -1 at end
 * of input, -2 after Ctrl-C or a Python line (nothing to run), or the status
 * of the compilation. The history gets the chunk as typed. */
static int load_line(lua_State *L)
{
    int interrupted = 0;
    lua_settop(L, 0);
    if (!push_line(L, 1, &interrupted))
        return interrupted ? -2 : -1;
    const char *line = lua_tostring(L, 1);
    if (line[0] == '%') {                        /* console.python remembers the cell */
        report(L, python_line(L));
        return -2;
    }
    char *typed = NULL;
    if (line[0] == '=') {                        /* Lua 5.2's "=expr" */
        typed = strdup(line);
        lua_pushfstring(L, "return %s", line + 1);
        lua_replace(L, 1);
    }
    int status = add_return(L);
    if (status != LUA_OK)
        status = multiline(L, &interrupted);
    if (!interrupted)
        history_add(typed ? typed : lua_tostring(L, 1));
    free(typed);
    if (interrupted)
        return -2;
    lua_remove(L, 1);                            /* the line */
    return status;
}

/* Shows the results of a chunk through console.show, or like print. */
static void show_results(lua_State *L)
{
    int n = lua_gettop(L);
    if (n == 0)
        return;
    if (get_console_function(L, "show")) {
        lua_insert(L, 1);
    } else {
        luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
        lua_getglobal(L, "print");
        lua_insert(L, 1);
    }
    if (lua_pcall(L, n, 0, 0) != LUA_OK)
        report(L, LUA_ERRRUN);
}

static void close_console_session(lua_State *L)
{
    if (!get_console_function(L, "close"))
        return;
    report(L, sesh_run(consoleS, 0, 0, 1));
}

/* A Ctrl-C outside the prompt and outside a running chunk: after Enter,
 * while the chunk compiles, it cancels that chunk; it never kills the
 * console. (A handler, not SIG_IGN, which programs started from the console
 * would inherit.) */
static volatile sig_atomic_t stray_interrupt;

static void on_stray_sigint(int sig)
{
    (void)sig;
    stray_interrupt = 1;
}

void sesh_console(sesh *S)
{
    lua_State *L = sesh_lua(S);
    int status;
    consoleS = S;
    void (*previous)(int) = signal(SIGINT, on_stray_sigint);
    completion_open(L);
    history_open();
    if (get_console_function(L, "show"))        /* equips the module before any chunk runs */
        lua_pop(L, 1);
    if (get_console_function(L, "start"))       /* the globals a console has ready */
        report(L, sesh_run(consoleS, 0, 0, 1));
    if (use_readline()) {
        fputs("A line starting with % runs Python in a session. Tab completes; Ctrl-D leaves.\n",
              stdout);
        fflush(stdout);
    }
    for (;;) {
        stray_interrupt = 0;
        status = load_line(L);
        if (status == -1)
            break;                               /* end of input */
        if (status == -2)
            continue;                            /* nothing to run */
        if (status == LUA_OK && stray_interrupt) {
            lua_pushliteral(L, "interrupted!");
            status = LUA_ERRRUN;
        }
        if (status == LUA_OK)
            status = sesh_run(consoleS, 0, LUA_MULTRET, 1);
        if (status == LUA_OK)
            show_results(L);
        else
            report(L, status);
    }
    lua_settop(L, 0);
    close_console_session(L);
    history_close();
    free_completions();
    signal(SIGINT, previous);
    fputs("\n", stdout);
    fflush(stdout);
}
