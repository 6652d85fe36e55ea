/*
 * options.c — see options.h.
 */
#include "pool/options.h"
#include "pool/sandbox.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void sesh_pool_usage(FILE *f)
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

int sesh_pool_options_parse(int argc, char **argv, sesh_pool_options *o)
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
        case O_HELP: sesh_pool_usage(stdout); exit(0);
        case O_MCP_KEY: o->mcp_key_file = optarg; break;
        case O_MCP_STDIO: o->mcp_stdio = 1; break;
        case O_MCP_ORIGIN:
            if (o->mcp_norigins == SESH_POOL_MAX_ORIGINS) {
                fprintf(stderr, "sesh-pool: at most %d --mcp-allow-origin\n", SESH_POOL_MAX_ORIGINS);
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
