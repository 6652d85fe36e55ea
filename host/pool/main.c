/*
 * main.c — sesh-pool: puts the pieces together from the command line
 * (options.c), the listening socket (listen.c) and the token (token.c): the
 * working directory, limits, the fork server, daemon mode, signals and the
 * idle exit. The rest is server.c (HTTP), api*.c (the API), sessions.c
 * (sessions), sandbox.c.
 */
#include "pool/api.h"
#include "pool/datadir.h"
#include "pool/cgroup.h"
#include "pool/files.h"
#include "pool/listen.h"
#include "pool/log.h"
#include "pool/mcp.h"
#include "pool/options.h"
#include "pool/python_env.h"
#include "pool/server.h"
#include "pool/sessions.h"
#include "pool/statedir.h"
#include "pool/token.h"
#include "pool/util.h"
#include "pool/zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define MCP_MAX_OUTPUT 20000        /* characters of stdout, stderr an MCP execution returns */
#define MCP_MAX_FILE (4u << 20)     /* bytes uploadFile and downloadFile move */


/* --min-free-disk in bytes: a percent of the file system the session
 * directories live on, and by default at most 1 GiB (enough for the host
 * to go on; a larger share of a large disk would only refuse uploads). */
static long long min_free_bytes(const sesh_pool_options *o, const char *work_dir)
{
    if (o->min_free_disk >= 0) return o->min_free_disk;
    struct statvfs v;
    if (statvfs(work_dir, &v) != 0) return 0;
    long long share = (long long)((unsigned long long)v.f_blocks * v.f_frsize / 100 *
                                  (unsigned long long)-o->min_free_disk);
    return o->min_free_default && share > (1LL << 30) ? 1LL << 30 : share;
}

/* ---- life ---- */

typedef struct pool {
    sesh_pool_options o;
    char *token;
    char *token_file;           /* the one in use */
    int own_token_file;         /* generated in the work dir: shown, removed with it */
    char *address;
    int listen_fd;
    sesh_statedir state;        /* this pool's folder, locked while it runs */
    const char *work_dir;       /* state.dir */
    long long min_free;         /* --min-free-disk, in bytes */
    char *datadir_note;         /* how sessions see their directories, for the log */
    sesh_python_env python;     /* --python, checked */
    char *pid_file;
    sesh_manager *m;
    sesh_zygote *zygote;        /* the fork server; NULL when off, */
    const char *fork_server_off;   /* for this reason */
    sesh_api *api;
    sesh_server *srv;
    char *mcp_key;
    sesh_mcp *mcp;
    size_t host_memory;         /* what --max-sessions was derived from; 0: given */
    char *limits_warning;       /* why sessions are not bounded as a whole, or NULL */
} pool;

static void write_pid_file(pool *p)
{
    if (!p->pid_file) return;
    char *tmp = sesh_printf("%s.%d.tmp", p->pid_file, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (f) {
        fprintf(f, "%d\n", (int)getpid());
        if (fclose(f) == 0 && rename(tmp, p->pid_file) == 0) {
            free(tmp);
            return;
        }
    }
    sesh_log("cannot write the pid file %s: %s", p->pid_file, strerror(errno));
    unlink(tmp);
    free(tmp);
}

/* ---- session limits ---- */

#define MAX_SESSIONS_CAP 600

/* Each session in a cgroup of its own (cgroup.h); where none can be had, the
 * pool still runs, with rlimits only, and says so. The default
 * --max-sessions is as many sessions as the host's memory holds at
 * --session-memory each. */
static void setup_limits(pool *p)
{
    char *why = NULL;
    if (sesh_cgroup_setup(&why) != 0)
        p->limits_warning = sesh_printf("sessions' memory and CPU are not bounded as a whole (%s); "
                                        "each process is still held to 4 GB of address space "
                                        "and a session to 128 processes", why ? why : "no cgroup");
    free(why);
    if (p->o.max_sessions)
        return;
    size_t memory = sesh_cgroup_host_memory();
    size_t n = memory ? memory / (size_t)p->o.session_memory : MAX_SESSIONS_CAP;
    p->o.max_sessions = n < 1 ? 1 : n > MAX_SESSIONS_CAP ? MAX_SESSIONS_CAP : (int)n;
    p->host_memory = memory;
}

static void log_limits(pool *p)
{
    if (p->limits_warning)
        sesh_log("WARNING: %s", p->limits_warning);
    else
        sesh_log("session limits: %lld bytes of memory each (files in /tmp and /dev/shm "
                 "included), enforced by cgroup %s (controllers: %s)",
                 p->o.session_memory, sesh_cgroup_version(), sesh_cgroup_controllers());
}

/* The fork server, where it serves: it forks Python sandboxes from an
 * interpreter loaded from /usr, and builds their root as bwrap would for one. */
static void setup_fork_server(pool *p)
{
    const sesh_pool_options *o = &p->o;
    p->fork_server_off = o->no_fork_server ? "--no-fork-server"
                       : o->shell ? "a Shell pool runs no Python"
                       : NULL;
    if (p->fork_server_off) {
        sesh_log("fork server: off (%s): sandboxes start with bwrap", p->fork_server_off);
        return;
    }
    sesh_zygote_config zc = { .python = p->python.path,
                              .python_dirs = (const char *const *)p->python.bind,
                              .max_forks = o->fork_server_forks,
                              .max_age = o->fork_server_age };
    p->zygote = sesh_zygote_new(&zc);
}

/* The session manager, and the MCP server when asked for. 0, or -1 with *err. */
static int setup_sessions(pool *p, char **err)
{
    sesh_pool_options *o = &p->o;
    /* Before any thread: it may enter namespaces of the pool's own. */
    p->datadir_note = sesh_datadir_setup(p->work_dir);
    p->min_free = min_free_bytes(o, p->work_dir);
    setup_limits(p);
    setup_fork_server(p);
    sesh_manager_config mc = { 0 };
    mc.work_dir = p->work_dir;
    mc.sandbox.python = p->python.path;
    mc.sandbox.python_dirs = (const char *const *)p->python.bind;
    mc.sandbox.network = o->network;
    mc.sandbox.disk_limit = (size_t)o->max_disk;
    mc.sandbox.min_free_disk = (size_t)p->min_free;
    mc.sandbox.session_memory = (size_t)o->session_memory;
    mc.sandbox.zygote = p->zygote;
    mc.sandbox.shell_only = o->shell;
    /* sandbox.uid stays 0: a root pool gives each sandbox a uid of its own, so
     * one session's processes and files are never another's (sessions.c hands
     * each session's files to its sandbox's uid). */
    mc.ready = o->ready;
    mc.cooldown = o->cooldown;
    mc.max_sessions = o->max_sessions;
    mc.max_queue = 64;
    p->m = sesh_manager_new(&mc, err);
    if (!p->m) return -1;
    if (o->mcp_key_file) {
        p->mcp_key = sesh_token_load(o->mcp_key_file, err);
        if (!p->mcp_key) {
            char *why = *err;
            *err = sesh_printf("--mcp-key-file: %s", why ? why : "cannot read the key");
            free(why);
            return -1;
        }
    }
    if (o->mcp_key_file || o->mcp_stdio) {
        sesh_mcp_config cfg = {
            .manager = p->m, .key = p->mcp_key, .allowed_origins = o->mcp_origins,
            .timeout = o->timeout, .cooldown = o->cooldown, .max_environments = o->max_sessions,
            .max_output = o->max_output < MCP_MAX_OUTPUT ? (size_t)o->max_output : MCP_MAX_OUTPUT,
            .max_file = (uint64_t)o->max_upload < MCP_MAX_FILE ? (uint64_t)o->max_upload : MCP_MAX_FILE,
            .min_free_disk = (uint64_t)p->min_free,
        };
        p->mcp = sesh_mcp_new(&cfg);
    }
    return 0;
}

/* The connections the descriptor limit leaves room for, beside the
 * sessions' own descriptors (a few each) and the pool's. */
static int connection_room(int wanted, int max_sessions)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return wanted;
    long long files = (long long)rl.rlim_cur;
    long long room = files - 64 - 8LL * max_sessions;
    if (room < files / 2) room = files / 2;
    if (room >= wanted) return wanted;
    sesh_log("the descriptor limit (%lld) leaves room for %lld connections, not %d", files, room, wanted);
    return (int)room;
}

/* Everything from the token to the running server. 0, or -1 with *err. */
static int setup(pool *p, char **err)
{
    sesh_pool_options *o = &p->o;
    if (sesh_python_env_probe(o->python, &p->python, err) != 0) return -1;
    if (o->socket) {
        p->listen_fd = sesh_listen_unix(o->socket, err);
        if (p->listen_fd < 0) return -1;
        p->address = sesh_printf("unix:%s", o->socket);
    } else {
        int loopback = 1;
        p->listen_fd = sesh_listen_tcp(o->listen, o->token_file != NULL, &p->address, &loopback, err);
        if (p->listen_fd < 0) return -1;
        if (o->tls_cert) {
            char *https = sesh_printf("https%s", p->address + strlen("http"));
            free(p->address);
            p->address = https;
        } else if (!loopback) {
            /* A warning, not a refusal: a TLS proxy in front, or a container
             * whose port only the host reaches, is a sound way to run it. */
            sesh_log("warning: --listen %s is reachable beyond this host and speaks plain HTTP: the "
                     "token and all else cross the network readable by anyone on the way; give "
                     "--tls-cert and --tls-key, or keep it behind a TLS proxy", o->listen);
        }
    }
    if (sesh_statedir_open(o->state_dir, &p->state, err) != 0) return -1;
    p->work_dir = p->state.dir;
    if (o->token_file) {
        p->token_file = sesh_xstrdup(o->token_file);
    } else {
        p->token_file = sesh_printf("%s/token", p->work_dir);
        p->own_token_file = 1;
    }
    p->token = sesh_token_load(p->token_file, err);
    if (!p->token) return -1;
    if (setup_sessions(p, err) != 0) return -1;

    sesh_api_config ac = { .timeout_cap = o->timeout, .max_output = (size_t)o->max_output,
                           .max_upload = (uint64_t)o->max_upload, .min_free_disk = (uint64_t)p->min_free,
                           .session_memory = (size_t)o->session_memory,
                           .max_sessions = o->max_sessions, .limits_warning = p->limits_warning,
                           .fork_server = p->zygote, .fork_server_off = p->fork_server_off };
    p->api = sesh_api_new(p->m, &ac);
    sesh_server_config sc = { .listen_fd = p->listen_fd, .token = p->token,
                              .max_connections = connection_room(o->max_connections, o->max_sessions),
                              .max_per_client = o->max_per_client, .idle_timeout = o->idle_timeout,
                              .header_timeout = o->header_timeout, .min_body_rate = o->min_body_rate,
                              /* sessions run at once, and as many waiting their turn */
                              .max_workers = 2 * o->max_sessions + 64, .mcp = p->mcp,
                              .tls_cert = o->tls_cert, .tls_key = o->tls_key };
    p->srv = sesh_server_start(&sc, p->api, err);
    if (!p->srv) return -1;

    if (o->pid_file) p->pid_file = sesh_xstrdup(o->pid_file);
    else if (o->socket) {
        char *copy = sesh_xstrdup(o->socket);
        p->pid_file = sesh_printf("%s/pool.pid", dirname(copy));
        free(copy);
    }
    write_pid_file(p);
    return 0;
}

static void teardown(pool *p)
{
    sesh_manager_stop(p->m);           /* running code ends: handlers return soon */
    sesh_server_stop(p->srv);
    sesh_mcp_free(p->mcp);             /* ends MCP sessions, deleting their environments */
    sesh_api_free(p->api);
    sesh_manager_free(p->m);
    sesh_zygote_free(p->zygote);       /* after the last sandbox it could fork */
    sesh_cgroup_teardown();            /* every sandbox is gone */
    free(p->limits_warning);
    if (p->listen_fd >= 0) close(p->listen_fd);
    if (p->o.socket && p->listen_fd >= 0) unlink(p->o.socket);
    if (p->pid_file) unlink(p->pid_file);
    sesh_statedir_close(&p->state, 1);
    free(p->token);
    free(p->mcp_key);
    free(p->token_file);
    free(p->address);
    free(p->pid_file);
    free(p->datadir_note);
    sesh_python_env_free(&p->python);
}

static char *startup_line(pool *p)
{
    char derived[96] = "";
    if (p->host_memory)
        snprintf(derived, sizeof derived, " (%zu bytes of memory at session memory each)",
                 p->host_memory);
    return sesh_printf("sesh-pool: listening on %s (token file %s, state dir %s, ready %d, "
                       "max sessions %d%s, session memory %lld bytes (%s%s), "
                       "cooldown %d s, timeout %d s, max upload %lld bytes, "
                       "max disk %lld bytes, min free disk %lld bytes, idle exit %d s, network %s, "
                       "container type %s%s%s)\n",
                       p->address, p->token_file, p->work_dir, p->o.ready, p->o.max_sessions,
                       derived, p->o.session_memory,
                       p->limits_warning ? "not enforced: no cgroup, see the log" : "cgroup ",
                       p->limits_warning ? "" : sesh_cgroup_version(),
                       p->o.cooldown, p->o.timeout, p->o.max_upload, p->o.max_disk, p->min_free,
                       p->o.idle_exit, p->o.network ? "on" : "off", p->o.shell ? "Shell" : "PythonLTS",
                       p->o.mcp_key_file ? ", mcp key file " : "",
                       p->o.mcp_key_file ? p->o.mcp_key_file : "");
}

/* --mcp-stdio: a private pool serving one MCP client on stdin and stdout
 * (where nothing else may be written) until stdin ends or a stop signal. */
static int serve_mcp_stdio(pool *p, const sigset_t *stop)
{
    char *err = NULL;
    int sig_fd = signalfd(-1, stop, SFD_CLOEXEC | SFD_NONBLOCK);
    int rc = sesh_python_env_probe(p->o.python, &p->python, &err);
    if (rc == 0) rc = sesh_statedir_open(p->o.state_dir, &p->state, &err);
    if (rc == 0) {
        p->work_dir = p->state.dir;
        rc = setup_sessions(p, &err);
    }
    if (rc != 0) {
        fprintf(stderr, "sesh-pool: %s\n", err ? err : "cannot start");
        free(err);
        teardown(p);
        if (sig_fd >= 0) close(sig_fd);
        return 1;
    }
    sesh_log("%s", p->datadir_note);
    log_limits(p);
    sesh_log("serving MCP on stdin and stdout (state dir %s, ready %d, max sessions %d, "
             "cooldown %d s, timeout %d s, network %s, container type %s)", p->work_dir, p->o.ready,
             p->o.max_sessions, p->o.cooldown, p->o.timeout, p->o.network ? "on" : "off",
             p->o.shell ? "Shell" : "PythonLTS");
    sesh_mcp_stdio(p->mcp, STDIN_FILENO, STDOUT_FILENO, sig_fd);
    if (sig_fd >= 0) close(sig_fd);
    teardown(p);
    sesh_log("stopped");
    return 0;
}

/* Detaches: the parent waits until the child listens (or fails), prints
 * what the child says, and exits with its verdict. Returns in the child
 * with the pipe to report on. */
static int daemonize(void)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        perror("sesh-pool: pipe");
        exit(1);
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("sesh-pool: fork");
        exit(1);
    }
    if (pid > 0) {
        close(fds[1]);
        char buf[4096];
        size_t n = 0;
        ssize_t r;
        while (n < sizeof buf - 1 && (r = read(fds[0], buf + n, sizeof buf - 1 - n)) != 0) {
            if (r < 0) { if (errno == EINTR) continue; break; }
            n += (size_t)r;
        }
        buf[n] = '\0';
        int ok = strncmp(buf, "sesh-pool: listening", 20) == 0;
        fputs(buf, ok ? stdout : stderr);
        fflush(stdout);
        _exit(ok ? 0 : 1);
    }
    close(fds[0]);
    setsid();
    return fds[1];
}

/* stderr to the log file; a daemon's stdin and stdout (and stderr, with no
 * log) to /dev/null. Before anything starts: every process the pool starts
 * (the fork server, sandboxes) has its stderr, which must not be the pipe or
 * terminal a daemon left. */
static void redirect_stdio(const char *log_file, int daemon)
{
    int null = daemon ? open("/dev/null", O_RDWR | O_CLOEXEC) : -1;
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        if (!log_file) dup2(null, STDERR_FILENO);
        close(null);
    }
    if (log_file) {
        int fd = open(log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
    }
}

int main(int argc, char **argv)
{
    pool p;
    memset(&p, 0, sizeof p);
    p.listen_fd = -1;
    p.state.lock_fd = -1;
    if (sesh_pool_options_parse(argc, argv, &p.o) != 0) return 2;

    /* Room for many connections and sandboxes' descriptors (nothing here
     * uses select(), and sandboxes set their own limit). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    /* A shell starting us with `&` hands SIGINT down ignored, and an ignored
     * signal is dropped even when waited for: take the defaults back. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGHUP);

    const char *log_file = p.o.log_file;
    char *default_log = NULL;
    if (p.o.daemon && !log_file && p.o.socket) {
        char *copy = sesh_xstrdup(p.o.socket);
        default_log = sesh_printf("%s/pool.log", dirname(copy));
        free(copy);
        log_file = default_log;
    }
    int report = -1;
    if (p.o.daemon) report = daemonize();      /* the startup line goes through report */
    if (p.o.daemon || log_file) redirect_stdio(log_file, p.o.daemon);

    /* Threads start in setup(): they must not take the stop signals. */
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    if (p.o.mcp_stdio) {
        int rc = serve_mcp_stdio(&p, &stop);
        free(default_log);
        return rc;
    }
    char *err = NULL;
    if (setup(&p, &err) != 0) {
        char *msg = sesh_printf("sesh-pool: %s\n", err ? err : "cannot start");
        if (report >= 0) {
            ssize_t w = write(report, msg, strlen(msg));
            (void)w;
        } else {
            fputs(msg, stderr);
        }
        free(msg);
        free(err);
        teardown(&p);
        free(default_log);
        return 1;
    }
    char *line = startup_line(&p);
    if (report >= 0) {
        ssize_t w = write(report, line, strlen(line));
        (void)w;
        close(report);
    } else {
        fputs(line, stdout);
        fflush(stdout);
    }
    sesh_log("%.*s", (int)strlen(line) - 1, line + strlen("sesh-pool: "));
    sesh_log("%s", p.datadir_note);
    sesh_log("sessions run %s (Python %s, IPython %s, environment %s)", p.python.path, p.python.version,
             p.python.ipython, p.python.prefix);
    free(line);
    log_limits(&p);

    for (;;) {
        struct timespec tick = { 1, 0 };
        int sig = sigtimedwait(&stop, NULL, &tick);
        if (sig == SIGHUP && p.o.tls_cert) {           /* with a certificate: read it again */
            sesh_server_reload_tls(p.srv);
            continue;
        }
        if (sig > 0) {
            sesh_log("signal %d: stopping", sig);
            break;
        }
        if (p.o.idle_exit > 0 && sesh_manager_idle_ms(p.m) >= (uint64_t)p.o.idle_exit * 1000) {
            sesh_log("no session for %d s: exiting", p.o.idle_exit);
            break;
        }
    }
    teardown(&p);
    sesh_log("stopped");
    free(default_log);
    return 0;
}
