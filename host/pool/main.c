/*
 * main.c — sesh-pool: the command line, the listening socket, the token,
 * the working directory, daemon mode, signals and the idle exit. The rest is
 * server.c (HTTP), api*.c (the API), sessions.c (sessions), sandbox.c.
 */
#include "pool/api.h"
#include "pool/datadir.h"
#include "pool/cgroup.h"
#include "pool/files.h"
#include "pool/log.h"
#include "pool/mcp.h"
#include "pool/python_env.h"
#include "pool/server.h"
#include "pool/sessions.h"
#include "pool/statedir.h"
#include "pool/util.h"
#include "pool/zygote.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <unistd.h>

#define VERSION "0.1"
#define MAX_ORIGINS 16
#define MCP_MAX_OUTPUT 20000        /* characters of stdout, stderr an MCP execution returns */
#define MCP_MAX_FILE (4u << 20)     /* bytes uploadFile and downloadFile move */

typedef struct options {
    const char *listen, *socket, *token_file, *state_dir, *python;
    const char *pid_file, *log_file;
    const char *tls_cert, *tls_key;     /* HTTPS */
    int idle_exit, daemon, ready, cooldown, max_sessions, timeout, network;
    long long max_upload, max_output, max_disk;
    long long min_free_disk;    /* bytes, or -percent of the file system (resolved in setup) */
    int min_free_default;       /* not given: 5%, at most 1 GiB */
    const char *mcp_key_file;           /* MCP over HTTP at /mcp, guarded by this key */
    const char *mcp_origins[MAX_ORIGINS + 1];
    int mcp_norigins, mcp_stdio;
    long long session_memory;
    int max_connections, max_per_client, header_timeout, idle_timeout, min_body_rate;
    int shell;                  /* --container-type Shell: shell commands only */
    int no_fork_server, fork_server_forks, fork_server_age;
} options;

static void usage(FILE *f)
{
    fputs("usage: sesh-pool [options]\n"
          "A local pool of sandboxed Python sessions speaking the Azure Container Apps\n"
          "dynamic sessions API (both generations).\n\n"
          "  --listen HOST:PORT    TCP address (default 127.0.0.1:0 without --socket; port 0 picks one)\n"
          "  --socket PATH         unix socket instead (created 0600)\n"
          "  --token-file PATH     bearer token; generated (0600) if the file does not exist\n"
          "  --state-dir DIR       where session directories live, in DIR/pool-<pid> (default:\n"
          "                        $TMPDIR/sesh-pool-<uid>); what killed pools left there goes\n"
          "  --python PATH         interpreter inside sandboxes, with IPython; a virtual environment's\n"
          "                        bin/python too, bound read-only (default /usr/bin/python3)\n"
          "  --ready-sessions N    sandboxes kept started for new sessions (default 1)\n"
          "  --cooldown SECONDS    idle time after which a session and its files go (default 300)\n"
          "  --max-sessions N      sessions at once; beyond, 429 with Retry-After (default: as many\n"
          "                        as the host's memory holds at --session-memory each, 1 to 600)\n"
          "  --session-memory BYTES  memory of one session's processes together, its files in /tmp\n"
          "                        and /dev/shm included; beyond, the kernel kills one of them\n"
          "                        (default 1073741824; needs cgroups, see the README)\n"
          "  --timeout SECONDS     default and largest execution timeout (default 220)\n"
          "  --max-output CHARS    cap of stdout/stderr per execution (default 1048576)\n"
          "  --max-upload BYTES    largest upload; beyond, 413 (default 134217728)\n"
          "  --max-disk BYTES      disk use of a session's /mnt/data; beyond, its code is stopped\n"
          "                        and uploads are refused with 413 (default 1073741824)\n"
          "  --min-free-disk BYTES|N%  free space the state directory's file system keeps:\n"
          "                        below it uploads are refused with 507 and code that writes is\n"
          "                        stopped (default: 5% of the file system, at most 1073741824)\n"
          "  --container-type PythonLTS|Shell\n"
          "                        what sessions run: Python, and shell commands beside it\n"
          "                        (PythonLTS, the default), or shell commands only (Shell)\n"
          "  --network             give sandboxes the host's network (default: none)\n"
          "  --no-fork-server      start every sandbox with bwrap, none forked from a pre-loaded\n"
          "                        interpreter (the fork server, used where the kernel allows)\n"
          "  --fork-server-forks N replace the fork server after N sandboxes (default 1000)\n"
          "  --fork-server-age SECONDS  replace the fork server after that long (default 3600)\n"
          "  --idle-exit SECONDS   exit after that long with no session (0: never)\n"
          "  --max-connections N   client connections at once (default 10000, less when the\n"
          "                        descriptor limit is lower)\n"
          "  --max-per-client N    connections from one client address (default 1000; 0: no bound)\n"
          "  --header-timeout SECONDS  a new connection's request headers must be in by then (default 30)\n"
          "  --idle-timeout SECONDS    an idle connection is closed after that (default 60)\n"
          "  --min-body-rate BYTES     bytes/s a request body must average after header-timeout\n"
          "                        (default 4096; 0: none)\n"
          "  --tls-cert FILE, --tls-key FILE\n"
          "                        serve HTTPS with this certificate (PEM, its chain after it) and\n"
          "                        key (PEM, unencrypted); SIGHUP reads them again\n"
          "  --daemon              detach once listening (log: --log-file, or pool.log by the socket)\n"
          "  --pid-file PATH       write the pid there (default: pool.pid by the socket)\n"
          "  --log-file PATH       log there instead of stderr\n"
          "  --mcp-key-file PATH   serve MCP at /mcp too, guarded by the key in PATH (x-ms-apikey);\n"
          "                        generated (0600) if the file does not exist\n"
          "  --mcp-allow-origin ORIGIN\n"
          "                        let browser pages of ORIGIN use /mcp (repeatable; * for any;\n"
          "                        loopback origins always may)\n"
          "  --mcp-stdio           serve MCP on stdin and stdout with a private pool, no listener;\n"
          "                        exit when stdin ends\n"
          "  --help                this text\n", f);
}

static int parse_int(const char *opt, const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || !*s || *end || v < lo || v > hi) {
        fprintf(stderr, "sesh-pool: %s wants a whole number from %lld to %lld, not '%s'\n", opt, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* --min-free-disk: bytes, or "N%" of the file system (kept as -N). */
static int parse_min_free(const char *s, long long *out)
{
    size_t n = strlen(s);
    if (n > 1 && s[n - 1] == '%') {
        char *num = strndup(s, n - 1);
        long long pct;
        int rc = num ? parse_int("--min-free-disk (percent)", num, 0, 90, &pct) : -1;
        free(num);
        if (rc == 0) *out = -pct;
        return rc;
    }
    return parse_int("--min-free-disk", s, 0, 1LL << 50, out);
}

static int parse_options(int argc, char **argv, options *o)
{
    enum { O_LISTEN = 256, O_SOCKET, O_TOKEN, O_STATE, O_PYTHON, O_IDLE, O_DAEMON, O_READY, O_COOL,
           O_MAXS, O_TIMEOUT, O_MAXOUT, O_MAXUP, O_MAXDISK, O_NET, O_PID, O_LOG, O_HELP,
           O_MINFREE, O_MCP_KEY, O_MCP_ORIGIN, O_MCP_STDIO, O_SESSMEM,
           O_MAXCONN, O_PERCLIENT, O_HEADERTO, O_IDLETO, O_BODYRATE, O_CONTAINER,
           O_TLSCERT, O_TLSKEY, O_NO_FORK, O_FORK_FORKS, O_FORK_AGE };
    static const struct option longopts[] = {
        { "listen", 1, 0, O_LISTEN }, { "socket", 1, 0, O_SOCKET }, { "token-file", 1, 0, O_TOKEN },
        { "state-dir", 1, 0, O_STATE }, { "python", 1, 0, O_PYTHON }, { "idle-exit", 1, 0, O_IDLE },
        { "daemon", 0, 0, O_DAEMON }, { "ready-sessions", 1, 0, O_READY }, { "cooldown", 1, 0, O_COOL },
        { "max-sessions", 1, 0, O_MAXS }, { "timeout", 1, 0, O_TIMEOUT }, { "max-output", 1, 0, O_MAXOUT },
        { "max-upload", 1, 0, O_MAXUP }, { "max-disk", 1, 0, O_MAXDISK }, { "network", 0, 0, O_NET }, { "pid-file", 1, 0, O_PID },
        { "log-file", 1, 0, O_LOG }, { "help", 0, 0, O_HELP }, { "min-free-disk", 1, 0, O_MINFREE },
        { "mcp-key-file", 1, 0, O_MCP_KEY }, { "mcp-allow-origin", 1, 0, O_MCP_ORIGIN },
        { "mcp-stdio", 0, 0, O_MCP_STDIO }, { "session-memory", 1, 0, O_SESSMEM },
        { "max-connections", 1, 0, O_MAXCONN }, { "max-per-client", 1, 0, O_PERCLIENT },
        { "header-timeout", 1, 0, O_HEADERTO }, { "idle-timeout", 1, 0, O_IDLETO },
        { "min-body-rate", 1, 0, O_BODYRATE }, { "container-type", 1, 0, O_CONTAINER },
        { "tls-cert", 1, 0, O_TLSCERT }, { "tls-key", 1, 0, O_TLSKEY },
        { "no-fork-server", 0, 0, O_NO_FORK }, { "fork-server-forks", 1, 0, O_FORK_FORKS },
        { "fork-server-age", 1, 0, O_FORK_AGE },
        { 0, 0, 0, 0 },
    };
    memset(o, 0, sizeof *o);
    o->ready = 1;
    o->cooldown = 300;
    o->session_memory = SESH_SANDBOX_DEFAULT_MEMORY;
    o->timeout = 220;
    o->max_output = 1 << 20;
    o->max_upload = 128LL << 20;
    o->max_disk = 1LL << 30;
    o->min_free_disk = -5;
    o->min_free_default = 1;
    o->python = "/usr/bin/python3";
    o->max_connections = 10000;
    o->max_per_client = 1000;
    o->header_timeout = 30;
    o->idle_timeout = 60;
    o->min_body_rate = 4096;
    int c;
    long long v;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        const char *name = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
        switch (c) {
        case O_LISTEN: o->listen = optarg; break;
        case O_SOCKET: o->socket = optarg; break;
        case O_TOKEN: o->token_file = optarg; break;
        case O_STATE: o->state_dir = optarg; break;
        case O_PYTHON: o->python = optarg; break;
        case O_PID: o->pid_file = optarg; break;
        case O_LOG: o->log_file = optarg; break;
        case O_TLSCERT: o->tls_cert = optarg; break;
        case O_TLSKEY: o->tls_key = optarg; break;
        case O_DAEMON: o->daemon = 1; break;
        case O_NET: o->network = 1; break;
        case O_NO_FORK: o->no_fork_server = 1; break;
        case O_FORK_FORKS: if (parse_int("--fork-server-forks", optarg, 1, 1 << 30, &v)) return -1; o->fork_server_forks = (int)v; break;
        case O_FORK_AGE: if (parse_int("--fork-server-age", optarg, 1, 1 << 30, &v)) return -1; o->fork_server_age = (int)v; break;
        case O_HELP: usage(stdout); exit(0);
        case O_MCP_KEY: o->mcp_key_file = optarg; break;
        case O_MCP_STDIO: o->mcp_stdio = 1; break;
        case O_MCP_ORIGIN:
            if (o->mcp_norigins == MAX_ORIGINS) {
                fprintf(stderr, "sesh-pool: at most %d --mcp-allow-origin\n", MAX_ORIGINS);
                return -1;
            }
            o->mcp_origins[o->mcp_norigins++] = optarg;
            break;
        case O_IDLE: if (parse_int("--idle-exit", optarg, 0, 1 << 30, &v)) return -1; o->idle_exit = (int)v; break;
        case O_READY: if (parse_int("--ready-sessions", optarg, 0, 64, &v)) return -1; o->ready = (int)v; break;
        case O_COOL: if (parse_int("--cooldown", optarg, 1, 1 << 30, &v)) return -1; o->cooldown = (int)v; break;
        case O_MAXS: if (parse_int("--max-sessions", optarg, 1, 100000, &v)) return -1; o->max_sessions = (int)v; break;
        case O_TIMEOUT: if (parse_int("--timeout", optarg, 1, 86400, &v)) return -1; o->timeout = (int)v; break;
        case O_MAXOUT: if (parse_int("--max-output", optarg, 0, 1LL << 30, &v)) return -1; o->max_output = v; break;
        case O_MAXUP: if (parse_int("--max-upload", optarg, 0, 1LL << 40, &v)) return -1; o->max_upload = v; break;
        case O_MAXDISK: if (parse_int("--max-disk", optarg, 1 << 20, 1LL << 50, &v)) return -1; o->max_disk = v; break;
        case O_MINFREE: if (parse_min_free(optarg, &o->min_free_disk)) return -1; o->min_free_default = 0; break;
        case O_SESSMEM: if (parse_int("--session-memory", optarg, 64LL << 20, 1LL << 50, &v)) return -1; o->session_memory = v; break;
        case O_MAXCONN: if (parse_int("--max-connections", optarg, 16, 1 << 20, &v)) return -1; o->max_connections = (int)v; break;
        case O_PERCLIENT: if (parse_int("--max-per-client", optarg, 0, 1 << 20, &v)) return -1; o->max_per_client = (int)v; break;
        case O_HEADERTO: if (parse_int("--header-timeout", optarg, 1, 3600, &v)) return -1; o->header_timeout = (int)v; break;
        case O_IDLETO: if (parse_int("--idle-timeout", optarg, 1, 86400, &v)) return -1; o->idle_timeout = (int)v; break;
        case O_BODYRATE: if (parse_int("--min-body-rate", optarg, 0, 1 << 30, &v)) return -1; o->min_body_rate = (int)v; break;
        case O_CONTAINER:
            /* Azure's names of pools' container types, in any case. */
            if (strcasecmp(optarg, "Shell") == 0) o->shell = 1;
            else if (strcasecmp(optarg, "PythonLTS") == 0) o->shell = 0;
            else {
                fprintf(stderr, "sesh-pool: --container-type wants PythonLTS or Shell, not '%s'\n", optarg);
                return -1;
            }
            break;
        case ':':
            fprintf(stderr, "sesh-pool: %s needs a value (see --help)\n", name);
            return -1;
        default:
            fprintf(stderr, "sesh-pool: unknown option '%s' (see --help)\n", name);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sesh-pool: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    if (o->listen && o->socket) {
        fprintf(stderr, "sesh-pool: give --listen or --socket, not both\n");
        return -1;
    }
    if (o->mcp_stdio && (o->listen || o->socket || o->daemon || o->token_file || o->mcp_key_file ||
                         o->idle_exit || o->pid_file || o->mcp_norigins || o->tls_cert || o->tls_key)) {
        fprintf(stderr, "sesh-pool: --mcp-stdio serves its client on stdin and stdout only: it takes "
                        "no --listen, --socket, --daemon, --token-file, --mcp-key-file, "
                        "--mcp-allow-origin, --idle-exit, --pid-file or --tls-cert\n");
        return -1;
    }
    if (!o->tls_cert != !o->tls_key) {
        fprintf(stderr, "sesh-pool: --tls-cert and --tls-key go together\n");
        return -1;
    }
    if (o->tls_cert && o->socket) {
        fprintf(stderr, "sesh-pool: --tls-cert is for --listen: a unix socket never leaves the host "
                        "and is only open to its owner, it needs no TLS\n");
        return -1;
    }
    return 0;
}

/* ---- the token ---- */

static char *read_token(const char *path, char **err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        *err = sesh_printf("cannot read the token file %s: %s", path, strerror(errno));
        return NULL;
    }
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) {
        *err = sesh_printf("cannot read the token file %s: %s", path, strerror(errno));
        return NULL;
    }
    buf[n] = '\0';
    char *start = buf;
    while (*start == ' ' || *start == '\t' || *start == '\n' || *start == '\r') start++;
    size_t len = strcspn(start, "\r\n");
    while (len > 0 && (start[len - 1] == ' ' || start[len - 1] == '\t')) len--;
    if (len == 0) {
        *err = sesh_printf("the token file %s is empty", path);
        return NULL;
    }
    return strndup(start, len);
}

/* Reads the token, or creates the file with a new one (0600). */
static char *load_token(const char *path, char **err)
{
    char hex[65];
    sesh_random_hex(hex, 32);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        if (errno == EEXIST) return read_token(path, err);
        *err = sesh_printf("cannot create the token file %s: %s", path, strerror(errno));
        return NULL;
    }
    char line[80];
    int n = snprintf(line, sizeof line, "%s\n", hex);
    if (write(fd, line, (size_t)n) != n || close(fd) != 0) {
        *err = sesh_printf("cannot write the token file %s: %s", path, strerror(errno));
        unlink(path);
        return NULL;
    }
    return sesh_xstrdup(hex);
}

/* ---- the listening socket ---- */

static int is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) ||
               (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

static int listen_tcp(const char *spec, int have_token_file, char **address, int *loopback, char **err)
{
    char *copy = sesh_xstrdup(spec ? spec : "127.0.0.1:0");
    char *host = copy, *port = strrchr(copy, ':');
    if (!port) {
        *err = sesh_printf("--listen wants HOST:PORT, not '%s'", copy);
        free(copy);
        return -1;
    }
    *port++ = '\0';
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        host++;
        host[strlen(host) - 1] = '\0';
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(*host ? host : NULL, port, &hints, &res);
    if (rc != 0) {
        *err = sesh_printf("cannot resolve --listen %s: %s", spec, gai_strerror(rc));
        free(copy);
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (!is_loopback(ai->ai_addr) && !have_token_file) {
            *err = sesh_printf("--listen %s is not a loopback address: give --token-file too, "
                               "so the token that guards it is one you chose to share", spec);
            break;
        }
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        *loopback = is_loopback(ai->ai_addr);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0) break;
        free(*err);
        *err = sesh_printf("cannot listen on %s: %s", spec, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    free(copy);
    if (fd < 0) {
        if (!*err) *err = sesh_printf("cannot listen on %s", spec);
        return -1;
    }
    free(*err);
    *err = NULL;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char name[INET6_ADDRSTRLEN] = "?";
    int p = 0;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    if (ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, name, sizeof name);
        p = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        *address = sesh_printf("http://[%s]:%d", name, p);
    } else {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, name, sizeof name);
        p = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        *address = sesh_printf("http://%s:%d", name, p);
    }
    return fd;
}

static int listen_unix(const char *path, char **err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sa.sun_path) {
        *err = sesh_printf("the socket path %s is too long (at most %zu bytes)", path, sizeof sa.sun_path - 1);
        return -1;
    }
    strcpy(sa.sun_path, path);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            *err = sesh_printf("%s exists and is not a socket: not touching it", path);
            return -1;
        }
        /* A socket left by a pool that died: reuse the name unless someone answers. */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
            close(probe);
            *err = sesh_printf("another pool already listens on %s", path);
            return -1;
        }
        if (probe >= 0) close(probe);
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = sesh_printf("cannot create a socket: %s", strerror(errno));
        return -1;
    }
    mode_t old = umask(0177);                  /* born 0600: no window where others may connect */
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc != 0 || chmod(path, 0600) != 0 || listen(fd, SOMAXCONN) != 0) {
        *err = sesh_printf("cannot listen on %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* --min-free-disk in bytes: a percent of the file system the session
 * directories live on, and by default at most 1 GiB (enough for the host
 * to go on; a larger share of a large disk would only refuse uploads). */
static long long min_free_bytes(const options *o, const char *work_dir)
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
    options o;
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
    sesh_zygote *zygote;        /* the fork server; NULL with --no-fork-server */
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
    const options *o = &p->o;
    const char *off = o->no_fork_server ? "--no-fork-server"
                    : o->shell ? "a Shell pool runs no Python"
                    : p->python.bind && p->python.bind[0] ? "--python lives outside /usr"
                    : NULL;
    if (off) {
        sesh_log("fork server: off (%s): sandboxes start with bwrap", off);
        return;
    }
    sesh_zygote_config zc = { .python = p->python.path, .max_forks = o->fork_server_forks,
                              .max_age = o->fork_server_age };
    p->zygote = sesh_zygote_new(&zc);
}

/* The session manager, and the MCP server when asked for. 0, or -1 with *err. */
static int setup_sessions(pool *p, char **err)
{
    options *o = &p->o;
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
        p->mcp_key = load_token(o->mcp_key_file, err);
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
    options *o = &p->o;
    if (sesh_python_env_probe(o->python, &p->python, err) != 0) return -1;
    if (o->socket) {
        p->listen_fd = listen_unix(o->socket, err);
        if (p->listen_fd < 0) return -1;
        p->address = sesh_printf("unix:%s", o->socket);
    } else {
        int loopback = 1;
        p->listen_fd = listen_tcp(o->listen, o->token_file != NULL, &p->address, &loopback, err);
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
    p->token = load_token(p->token_file, err);
    if (!p->token) return -1;
    if (setup_sessions(p, err) != 0) return -1;

    sesh_api_config ac = { .timeout_cap = o->timeout, .max_output = (size_t)o->max_output,
                           .max_upload = (uint64_t)o->max_upload, .min_free_disk = (uint64_t)p->min_free,
                           .session_memory = (size_t)o->session_memory,
                           .max_sessions = o->max_sessions, .limits_warning = p->limits_warning,
                           .fork_server = p->zygote };
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
    if (parse_options(argc, argv, &p.o) != 0) return 2;

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
