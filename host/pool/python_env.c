/*
 * python_env.c — see python_env.h.
 */
#include "pool/python_env.h"
#include "pool/sandbox_spawn.h"
#include "pool/util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROBE_TIMEOUT_MS 60000      /* a cold import of IPython on a busy machine */
#define PROBE_OUTPUT_MAX 65536
#define NOBODY 65534                /* a root pool asks as a user of no account */

/* Runs under the interpreter as the sandbox would (-E -s -B); any Python
 * prints its line, so an old one is told apart from no Python at all.
 * IPython is looked up, not imported: that would add a quarter of a second
 * to every start (a broken IPython shows when the first sandbox starts). */
static const char probe_code[] =
    "import json, sys\n"
    "out = {'version': '%d.%d.%d' % tuple(sys.version_info[:3]), 'prefix': sys.prefix,\n"
    "       'exec_prefix': sys.exec_prefix,\n"
    "       'base_prefix': getattr(sys, 'base_prefix', sys.prefix),\n"
    "       'base_exec_prefix': getattr(sys, 'base_exec_prefix', sys.exec_prefix)}\n"
    "try:\n"
    "    import importlib.util\n"
    "    if importlib.util.find_spec('IPython') is None:\n"
    "        raise ImportError(\"No module named 'IPython'\")\n"
    "    try:\n"
    "        from importlib.metadata import version\n"
    "        out['ipython'] = version('ipython')\n"
    "    except Exception:\n"
    "        out['ipython'] = 'unknown'\n"
    "except BaseException as e:\n"
    "    out['ipython_error'] = '%s: %s' % (type(e).__name__, e)\n"
    "sys.stdout.write('\\nSESH-PROBE ' + json.dumps(out) + '\\n')\n";

/* Directories every sandbox has already (sandbox_spawn.c's add_system). */
static const char *const system_dirs[] = { "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32" };

/* Where a binding would hide what the sandbox is made of. */
static const char *const reserved_dirs[] = { "/proc", "/dev", "/mnt/data", "/sys" };

static int is_under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (strcmp(dir, "/") == 0) return 1;
    return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* The interpreter's output, as a message may quote it: its last line or
 * so, printable ASCII only. */
static char *output_tail(const char *out, size_t n)
{
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' ')) n--;
    size_t start = n > 300 ? n - 300 : 0;
    char *s = sesh_xmalloc(n - start + 1);
    size_t j = 0;
    for (size_t i = start; i < n; i++)
        s[j++] = out[i] == '\n' ? ' ' : (out[i] >= 0x20 && out[i] < 0x7f) ? out[i] : '?';
    s[j] = '\0';
    return s;
}

static void child_exec(const char *path, int out)
{
    int null = open("/dev/null", O_RDONLY);
    if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0) _exit(126);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (geteuid() == 0 &&
        (setgroups(0, NULL) != 0 || setresgid(NOBODY, NOBODY, NOBODY) != 0 || setresuid(NOBODY, NOBODY, NOBODY) != 0)) {
        dprintf(2, "cannot drop to uid %d: %s\n", NOBODY, strerror(errno));
        _exit(126);
    }
    if (chdir("/") != 0) _exit(126);
    char *argv[] = { (char *)path, "-E", "-s", "-B", "-c", (char *)probe_code, NULL };
    char **env = sesh_sandbox_env();
    execve(path, argv, env ? env : (char *[]){ NULL });
    dprintf(2, "SESH-EXEC %s\n", strerror(errno));
    _exit(127);
}

/* Runs the probe; its output (NUL-terminated) and exit status. -1 when it
 * could not be run at all, with *err. */
static int run_probe(const char *path, char **output, size_t *n, int *status, char **err)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        *err = sesh_printf("cannot run --python %s: pipe: %s", path, strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        *err = sesh_printf("cannot run --python %s: fork: %s", path, strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) child_exec(path, fds[1]);
    close(fds[1]);
    char *buf = sesh_xmalloc(PROBE_OUTPUT_MAX + 1);
    size_t got = 0;
    uint64_t deadline = sesh_now_ms() + PROBE_TIMEOUT_MS;
    int timed_out = 0;
    for (;;) {
        uint64_t now = sesh_now_ms();
        if (now >= deadline) { timed_out = 1; break; }
        struct pollfd p = { .fd = fds[0], .events = POLLIN };
        int rc = poll(&p, 1, (int)(deadline - now));
        if (rc < 0 && errno == EINTR) continue;
        if (rc <= 0) { timed_out = rc == 0; break; }
        char chunk[4096];
        ssize_t r = read(fds[0], chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        size_t keep = (size_t)r < PROBE_OUTPUT_MAX - got ? (size_t)r : PROBE_OUTPUT_MAX - got;
        memcpy(buf + got, chunk, keep);
        got += keep;
    }
    close(fds[0]);
    if (timed_out) kill(pid, SIGKILL);
    while (waitpid(pid, status, 0) < 0 && errno == EINTR) {}
    buf[got] = '\0';
    if (timed_out) {
        *err = sesh_printf("--python %s did not answer within %d s", path, PROBE_TIMEOUT_MS / 1000);
        free(buf);
        return -1;
    }
    *output = buf;
    *n = got;
    return 0;
}

static const char *field(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && *s == '/' && strlen(s) < 4096 ? s : NULL;
}

/* What a sandbox must bind of the interpreter's prefixes. 0, or -1 with *err. */
static int choose_binds(sesh_python_env *env, json_t *info, char **err)
{
    static const char *const keys[] = { "prefix", "exec_prefix", "base_prefix", "base_exec_prefix" };
    const char *dirs[4];
    size_t ndirs = 0;
    for (size_t i = 0; i < 4; i++) {
        const char *d = field(info, keys[i]);
        if (!d) {
            *err = sesh_printf("--python %s gave no absolute sys.%s", env->path, keys[i]);
            return -1;
        }
        int covered = 0;
        for (size_t k = 0; k < sizeof system_dirs / sizeof *system_dirs; k++)
            covered |= is_under(d, system_dirs[k]);
        for (size_t k = 0; k < sizeof reserved_dirs / sizeof *reserved_dirs && !covered; k++)
            if (is_under(d, reserved_dirs[k]) || is_under(reserved_dirs[k], d)) {
                *err = sesh_printf("--python %s lives in %s, which a sandbox cannot show as it is "
                                   "(it would hide or be hidden by the sandbox's %s)", env->path, d,
                                   reserved_dirs[k]);
                return -1;
            }
        for (size_t k = 0; k < ndirs && !covered; k++)
            covered = strcmp(dirs[k], d) == 0;
        if (!covered) dirs[ndirs++] = d;
    }
    /* The interpreter's own path must resolve inside: in /usr or a prefix. */
    char *parent = sesh_xstrdup(env->path);
    *strrchr(parent, '/') = '\0';
    int reachable = 0;
    for (size_t k = 0; k < sizeof system_dirs / sizeof *system_dirs; k++)
        reachable |= is_under(parent, system_dirs[k]);
    for (size_t k = 0; k < ndirs; k++)
        reachable |= is_under(parent, dirs[k]);
    free(parent);
    if (!reachable) {
        *err = sesh_printf("--python %s lies outside its environment (%s): give the path of its "
                           "interpreter inside it, e.g. %s/bin/python", env->path,
                           field(info, "prefix"), field(info, "prefix"));
        return -1;
    }
    env->bind = sesh_xcalloc(ndirs + 1, sizeof *env->bind);
    size_t nb = 0;
    for (size_t i = 0; i < ndirs; i++) {              /* one binding covers what is under it */
        int inside_other = 0;
        for (size_t k = 0; k < ndirs; k++)
            inside_other |= k != i && is_under(dirs[i], dirs[k]) && strcmp(dirs[i], dirs[k]) != 0;
        if (!inside_other) env->bind[nb++] = sesh_xstrdup(dirs[i]);
    }
    return 0;
}

static int version_at_least(const char *v, int major, int minor)
{
    int a = 0, b = 0;
    if (sscanf(v, "%d.%d", &a, &b) != 2) return 0;
    return a > major || (a == major && b >= minor);
}

int sesh_python_env_probe(const char *path, sesh_python_env *env, char **err)
{
    memset(env, 0, sizeof *env);
    *err = NULL;
    if (!path || !*path) {
        *err = sesh_xstrdup("--python wants the path of an interpreter");
        return -1;
    }
    if (path[0] == '/') {
        env->path = sesh_xstrdup(path);
    } else {                                  /* the sandbox's working directory is not ours */
        char cwd[4096];
        if (!getcwd(cwd, sizeof cwd)) {
            *err = sesh_printf("--python %s: cannot make it absolute: %s", path, strerror(errno));
            return -1;
        }
        env->path = sesh_printf("%s/%s", cwd, path);
    }
    struct stat st;
    if (stat(env->path, &st) != 0 || !S_ISREG(st.st_mode)) {
        *err = sesh_printf("--python %s: %s", env->path,
                           access(env->path, F_OK) == 0 ? "not a file" : strerror(errno));
        sesh_python_env_free(env);
        return -1;
    }
    char *out = NULL;
    size_t n = 0;
    int status = 0;
    if (run_probe(env->path, &out, &n, &status, err) != 0) {
        sesh_python_env_free(env);
        return -1;
    }
    const char *exec_failed = strstr(out, "SESH-EXEC ");
    const char *line = strstr(out, "\nSESH-PROBE ");
    json_t *info = line ? json_loads(line + 12, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
    int rc = -1;
    if (exec_failed) {
        char *why = output_tail(exec_failed + 10, strcspn(exec_failed + 10, "\n"));
        *err = sesh_printf("--python %s cannot be run: %s%s", env->path, why,
                           geteuid() == 0 ? " (sandboxes run as users of their own: it, and the "
                                            "directories above it, must be readable and executable by all)" : "");
        free(why);
    } else if (!json_is_object(info) || !json_is_string(json_object_get(info, "version"))) {
        char *tail = output_tail(out, n);
        *err = sesh_printf("--python %s is not a Python the pool can use (exit status %d%s%s)", env->path,
                           WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
                           *tail ? ": " : "", tail);
        free(tail);
    } else if (!version_at_least(json_string_value(json_object_get(info, "version")), 3, 8)) {
        *err = sesh_printf("--python %s is Python %s: sessions need Python 3.8 or later", env->path,
                           json_string_value(json_object_get(info, "version")));
    } else if (!json_is_string(json_object_get(info, "ipython"))) {
        const char *why = json_string_value(json_object_get(info, "ipython_error"));
        char *shown = output_tail(why ? why : "", why ? strlen(why) : 0);
        *err = sesh_printf("--python %s (Python %s, environment %s) has no IPython (%s): install it "
                           "there (python -m pip install ipython), or make the environment with "
                           "--system-site-packages to use the system's", env->path,
                           json_string_value(json_object_get(info, "version")),
                           field(info, "prefix") ? field(info, "prefix") : "?", shown);
        free(shown);
    } else if (choose_binds(env, info, err) == 0) {
        env->version = sesh_xstrdup(json_string_value(json_object_get(info, "version")));
        env->ipython = sesh_xstrdup(json_string_value(json_object_get(info, "ipython")));
        env->prefix = sesh_xstrdup(field(info, "prefix"));
        rc = 0;
    }
    json_decref(info);
    free(out);
    if (rc != 0) sesh_python_env_free(env);
    return rc;
}

void sesh_python_env_free(sesh_python_env *env)
{
    free(env->path);
    free(env->version);
    free(env->ipython);
    free(env->prefix);
    sesh_strv_free(env->bind);
    memset(env, 0, sizeof *env);
}
