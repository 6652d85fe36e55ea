/*
 * driver.c — the sandbox and the runner, tested directly through sandbox.h:
 * real bubblewrap, real seccomp, real Python. Prints "N passed, N failed".
 *
 * Usage: driver [FILTER]   runs the tests whose name contains FILTER.
 *
 * With SESH_SANDBOX_FORK=1 in the environment, every sandbox is forked from
 * a fork server (zygote.h), as a pool forks them, and the forked ones are
 * compared with one bwrap starts ("fork path: ..."); the cgroup tests then
 * run with forked sandboxes too.
 */
#include "pool/sandbox.h"
#include "pool/cgroup.h"
#include "pool/datadir.h"
#include "pool/zygote.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "../support/check.h"

static char base[512];
static sesh_zygote *zygote;        /* fork mode: the fork server every start uses */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *new_data_dir(void)
{
    static int n;
    char *dir = malloc(600);
    snprintf(dir, 600, "%s/data%d", base, n++);
    if (mkdir(dir, 0700) < 0) {
        perror(dir);
        exit(2);
    }
    return dir;
}

static sesh_sandbox *start(const char *data_dir, const sesh_sandbox_config *extra)
{
    sesh_sandbox_config cfg = { 0 };
    if (extra)
        cfg = *extra;
    cfg.zygote = zygote;
    cfg.data_dir = data_dir;
    char *err = NULL;
    sesh_sandbox *sb = sesh_sandbox_start(&cfg, &err);
    if (!sb) {
        printf("cannot start a sandbox: %s\n", err);
        free(err);
    }
    return sb;
}

/* start() for one test, whose failure it reports as "NAME: start". */
static sesh_sandbox *start_for(const char *name, const char *data_dir,
                               const sesh_sandbox_config *extra)
{
    sesh_sandbox *sb = start(data_dir, extra);
    if (!sb) {
        char what[64];
        snprintf(what, sizeof what, "%s: start", name);
        check(0, what, "no sandbox");
    }
    return sb;
}

typedef struct {
    sesh_run_status status;
    json_t *reply;
    char *err;
} run_result;

static run_result run_opts(sesh_sandbox *sb, const char *code, int timeout_ms, int max_output,
                           int jupyter)
{
    run_result r = { 0 };
    json_t *req = json_pack("{s:s, s:s, s:i, s:b}", "op", "execute", "code", code,
                            "max_output", max_output, "jupyter", jupyter);
    r.status = sesh_sandbox_execute(sb, req, timeout_ms, NULL, &r.reply, &r.err);
    json_decref(req);
    return r;
}

static run_result run(sesh_sandbox *sb, const char *code)
{
    return run_opts(sb, code, 30000, 4096, 0);
}

static void done(run_result *r)
{
    json_decref(r->reply);
    free(r->err);
}

static const char *field(run_result *r, const char *key)
{
    const char *s = json_string_value(json_object_get(r->reply, key));
    return s ? s : "";
}

static const char *status_of(run_result *r)
{
    return field(r, "status");
}

static char *describe(run_result *r)
{
    static char buf[4096];
    if (!r->reply) {
        snprintf(buf, sizeof buf, "run status %d, err %s", r->status, r->err ? r->err : "-");
        return buf;
    }
    char *s = json_dumps(r->reply, JSON_COMPACT);
    snprintf(buf, sizeof buf, "run status %d, reply %.3000s", r->status, s);
    free(s);
    return buf;
}

/* True when the code printed exactly `expect` on stdout and succeeded. */
static void expect_stdout(sesh_sandbox *sb, const char *name, const char *code,
                          const char *expect)
{
    if (!selected(name))
        return;
    run_result r = run(sb, code);
    check(r.status == SESH_RUN_OK && strcmp(status_of(&r), "Success") == 0 &&
          strcmp(field(&r, "stdout"), expect) == 0, name, "%s", describe(&r));
    done(&r);
}

static void expect_result(sesh_sandbox *sb, const char *name, const char *code,
                          json_t *expect)
{
    if (selected(name)) {
        run_result r = run(sb, code);
        json_t *got = json_object_get(r.reply, "result");
        check(r.status == SESH_RUN_OK && got && json_equal(got, expect), name, "%s",
              describe(&r));
        done(&r);
    }
    json_decref(expect);
}

/* ---- the tests ---- */

static void test_results(sesh_sandbox *sb)
{
    expect_result(sb, "result: int is a JSON number", "6 * 7", json_integer(42));
    expect_result(sb, "result: str is itself", "'hello ' + 'world'", json_string("hello world"));
    expect_result(sb, "result: True is a JSON boolean", "1 < 2", json_true());
    expect_result(sb, "result: None is empty", "None", json_string(""));
    expect_result(sb, "result: no final expression is empty", "x = 1", json_string(""));
    expect_result(sb, "result: nan is null", "float('nan')", json_null());
    expect_result(sb, "result: float is a number", "0.5", json_real(0.5));
    expect_result(sb, "result: inf is null", "float('-inf')", json_null());
    expect_result(sb, "result: numpy scalars are numbers",
                  "import numpy as np\n[np.int64(7), np.float32(0.5)][0]", json_integer(7));
    expect_result(sb, "result: dict is its repr", "{'a': 1, 'b': [1, 2]}",
                  json_string("{'a': 1, 'b': [1, 2]}"));
    expect_result(sb, "result: list is its repr", "[1, 'two']", json_string("[1, 'two']"));
    expect_result(sb, "result: trailing semicolon hides the value", "6 * 7;", json_string(""));
    expect_result(sb, "result: DataFrame is its text repr",
                  "import pandas as pd\npd.DataFrame({'a': [1, 2]})",
                  json_string("   a\n0  1\n1  2"));
    if (selected("result: figure is a PNG image")) {
        run_result r = run(sb, "import matplotlib.pyplot as plt\nimport numpy as np\n"
                               "x = np.linspace(-1, 1, 50)\nplt.plot(x, np.sin(x))\n"
                               "plt.title('sin')\nplt.grid(True)");
        json_t *res = json_object_get(r.reply, "result");
        const char *data = json_string_value(json_object_get(res, "base64_data"));
        check(r.status == SESH_RUN_OK && data && strncmp(data, "iVBORw0KGgo", 11) == 0 &&
              strcmp(json_string_value(json_object_get(res, "type")), "image") == 0 &&
              strcmp(field(&r, "stderr"), "") == 0,
              "result: figure is a PNG image", "%.300s", describe(&r));
        done(&r);
        r = run(sb, "plt.plot([1, 2])\nplt.show()\nprint('after')");
        res = json_object_get(r.reply, "result");
        check(r.status == SESH_RUN_OK && json_is_object(res) &&
              strcmp(field(&r, "stdout"), "after\n") == 0 &&
              strcmp(field(&r, "stderr"), "") == 0,
              "result: plt.show() is an image, without a warning", "%.300s", describe(&r));
        done(&r);
        r = run(sb, "1 + 1");
        check(r.status == SESH_RUN_OK &&
              json_integer_value(json_object_get(r.reply, "result")) == 2,
              "result: a shown figure is not shown again", "%s", describe(&r));
        done(&r);
    }
    if (selected("result: jupyter format")) {
        run_result r = run_opts(sb, "6 * 7", 30000, 4096, 1);
        json_t *res = json_object_get(r.reply, "result");
        check(json_is_string(res) && strcmp(json_string_value(res), "42") == 0,
              "result: jupyter format gives primitives as repr", "%s", describe(&r));
        done(&r);
    }
}

static void test_failure(sesh_sandbox *sb)
{
    if (selected("exception")) {
        run_result r = run(sb, "def f():\n    return 1 / 0\nf()");
        const char *err = field(&r, "stderr");
        check(r.status == SESH_RUN_OK && strcmp(status_of(&r), "Failure") == 0 &&
              json_is_null(json_object_get(r.reply, "result")) &&
              strstr(err, "ZeroDivisionError") && strstr(err, "Traceback") &&
              !strchr(err, '\033') && strcmp(field(&r, "stdout"), "") == 0,
              "exception: Failure, null result, plain traceback in stderr", "%s",
              describe(&r));
        done(&r);
        r = run(sb, "def (");
        check(r.status == SESH_RUN_OK && strcmp(status_of(&r), "Failure") == 0 &&
              strstr(field(&r, "stderr"), "SyntaxError"),
              "exception: syntax error", "%s", describe(&r));
        done(&r);
    }
    expect_stdout(sb, "exception: the session works afterwards", "print(6 * 7)", "42\n");
}

static void test_state(sesh_sandbox *sb, sesh_sandbox *other)
{
    if (selected("state: visible in the next execution")) {
        run_result r = run(sb, "shared_value = 1234\nimport json");
        done(&r);
        r = run(sb, "print(shared_value, json.dumps([1]))");
        check(strcmp(field(&r, "stdout"), "1234 [1]\n") == 0,
              "state: visible in the next execution", "%s", describe(&r));
        done(&r);
    }
    if (selected("state: not visible in another sandbox")) {
        run_result d = run(sb, "shared_value = 1234");
        done(&d);
        run_result r = run(other, "shared_value");
        check(r.status == SESH_RUN_OK && strcmp(status_of(&r), "Failure") == 0 &&
              strstr(field(&r, "stderr"), "NameError"),
              "state: not visible in another sandbox", "%s", describe(&r));
        done(&r);
    }
}

static void test_streams(sesh_sandbox *sb)
{
    expect_stdout(sb, "streams: stdout", "print('a'); print('b')", "a\nb\n");
    if (selected("streams: stderr")) {
        run_result r = run(sb, "import sys; print('oops', file=sys.stderr)");
        check(strcmp(field(&r, "stderr"), "oops\n") == 0, "streams: stderr", "%s",
              describe(&r));
        done(&r);
    }
    if (selected("streams: capped")) {
        run_result r = run_opts(sb, "print('x' * 100); import sys; sys.stderr.write('é' * 50)",
                                30000, 10, 0);
        check(strcmp(field(&r, "stdout"), "xxxxxxxxxx") == 0 &&
              json_is_true(json_object_get(r.reply, "stdout_truncated")) &&
              strlen(field(&r, "stderr")) == 20 &&
              json_is_true(json_object_get(r.reply, "stderr_truncated")),
              "streams: capped at max_output characters, flagged", "%s", describe(&r));
        done(&r);
        r = run(sb, "print('short')");
        check(json_is_false(json_object_get(r.reply, "stdout_truncated")),
              "streams: not flagged when short", "%s", describe(&r));
        done(&r);
    }
    if (selected("streams: 100 MB")) {
        long long t = now_ms();
        run_result r = run(sb, "for i in range(100):\n    print('y' * (1 << 20))");
        check(r.status == SESH_RUN_OK && strlen(field(&r, "stdout")) == 4096 &&
              json_is_true(json_object_get(r.reply, "stdout_truncated")),
              "streams: 100 MB printed is capped", "%.200s (%lld ms)", describe(&r),
              now_ms() - t);
        done(&r);
    }
}

static void test_files(sesh_sandbox *sb, const char *data_dir)
{
    expect_stdout(sb, "files: working directory is /mnt/data", "import os; print(os.getcwd())",
                  "/mnt/data\n");
    if (selected("files: /mnt/data is writable and shared with the host")) {
        run_result r = run(sb, "open('hello.txt', 'w').write('hi from python')");
        char path[700];
        snprintf(path, sizeof path, "%s/hello.txt", data_dir);
        FILE *f = fopen(path, "r");
        char buf[64] = "";
        if (f) {
            if (!fgets(buf, sizeof buf, f))
                buf[0] = 0;
            fclose(f);
        }
        check(strcmp(buf, "hi from python") == 0,
              "files: /mnt/data is writable and shared with the host", "%s; host read '%s'",
              describe(&r), buf);
        done(&r);
    }
    expect_stdout(sb, "files: /tmp is writable",
                  "open('/tmp/t', 'w').write('x'); print(open('/tmp/t').read())", "x\n");
}

/* Python that prints one line per attempt: the name and "denied" or "ALLOWED". */
static const char *const probes =
    "import os, socket\n"
    "def attempt(name, fn):\n"
    "    try:\n"
    "        fn()\n"
    "        print(name, 'ALLOWED')\n"
    "    except Exception as e:\n"
    "        print(name, 'denied')\n";

static void expect_denied(sesh_sandbox *sb, const char *name, const char *call)
{
    if (!selected(name))
        return;
    char code[2048];
    snprintf(code, sizeof code, "%sattempt('x', lambda: %s)", probes, call);
    run_result r = run(sb, code);
    check(r.status == SESH_RUN_OK && strcmp(field(&r, "stdout"), "x denied\n") == 0, name,
          "%s", describe(&r));
    done(&r);
}

static void test_containment(sesh_sandbox *sb)
{
    expect_stdout(sb, "contain: not root", "import os; print(os.getuid() != 0, os.geteuid() != 0)",
                  "True True\n");
    expect_denied(sb, "contain: no TCP connection out",
                  "socket.create_connection(('192.0.2.1', 80), timeout=3)");
    expect_denied(sb, "contain: no TCP connection to the host's loopback",
                  "socket.create_connection(('127.0.0.1', 22), timeout=3)");
    expect_stdout(sb, "contain: only a loopback interface",
                  "import socket; print([n for i, n in socket.if_nameindex()])", "['lo']\n");
    expect_denied(sb, "contain: /etc/shadow", "open('/etc/shadow').read()");
    expect_denied(sb, "contain: /root", "os.listdir('/root')");
    expect_denied(sb, "contain: /home", "os.listdir('/home')");
    expect_denied(sb, "contain: write /usr", "open('/usr/evil', 'w')");
    expect_denied(sb, "contain: write /etc", "open('/etc/evil', 'w')");
    expect_denied(sb, "contain: write /", "open('/evil', 'w')");
    expect_denied(sb, "contain: write /dev", "open('/dev/evil', 'w')");
    expect_stdout(sb, "contain: /dev/null still works",
                  "open('/dev/null', 'w').write('x'); print(len(open('/dev/urandom', 'rb').read(4)))",
                  "4\n");
    expect_denied(sb, "contain: write /proc/sys", "open('/proc/sys/kernel/hostname', 'w').write('x')");
    expect_stdout(sb, "contain: only the sandbox's processes in /proc",
                  "import os; print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit())[:2])",
                  "[1, 2]\n");
    expect_stdout(sb, "contain: empty environment",
                  "import os; print(sorted(os.environ))",
                  "['HOME', 'LANG', 'MPLBACKEND', 'MPLCONFIGDIR', 'PATH', 'PWD', "
                  "'PYTHONDONTWRITEBYTECODE', 'PYTHONUNBUFFERED']\n");
    expect_stdout(sb, "contain: no capabilities",
                  "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')])",
                  "['0000000000000000']\n");
}

/* Returns the first line of stdout of code run in sb, for asserts on probes. */
static void expect_syscalls_denied(sesh_sandbox *sb)
{
    static const struct { const char *name, *call; int err; } calls[] = {
        { "seccomp: ptrace", "libc.ptrace(16, 1, 0, 0)", 1 },
        { "seccomp: mount", "libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)", 1 },
        { "seccomp: umount", "libc.umount2(b'/tmp', 0)", 1 },
        { "seccomp: unshare a user namespace", "libc.unshare(0x10000000)", 1 },
        { "seccomp: unshare a mount namespace", "libc.unshare(0x00020000)", 1 },
        { "seccomp: clone a user namespace", "libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0)", 1 },
        { "seccomp: clone3 falls back", "libc.syscall(435, 0, 0)", 38 },
        { "seccomp: setns", "libc.setns(0, 0)", 1 },
        { "seccomp: pivot_root", "libc.syscall(155, b'/tmp', b'/tmp')", 1 },
        { "seccomp: bpf", "libc.syscall(321, 0, 0, 0)", 1 },
        { "seccomp: keyctl", "libc.syscall(250, 0, 0, 0, 0, 0)", 1 },
        { "seccomp: add_key", "libc.syscall(248, b'user', b'k', b'v', 1, -2)", 1 },
        { "seccomp: perf_event_open", "libc.syscall(298, 0, 0, -1, -1, 0)", 1 },
        { "seccomp: userfaultfd", "libc.syscall(323, 1)", 1 },
        { "seccomp: io_uring_setup", "libc.syscall(425, 1, ctypes.create_string_buffer(120))", 1 },
        { "seccomp: kexec_load", "libc.syscall(246, 0, 0, 0, 0)", 1 },
        { "seccomp: init_module", "libc.syscall(175, 0, 0, b'')", 1 },
        { "seccomp: reboot", "libc.syscall(169, 0xfee1dead, 672274793, 0x4321fedc, 0)", 1 },
        { "seccomp: open_by_handle_at", "libc.syscall(304, 0, 0, 0)", 1 },
        { "seccomp: acct", "libc.syscall(163, 0)", 1 },
        { "seccomp: ioperm", "libc.syscall(173, 0, 1, 1)", 1 },
        { "seccomp: TIOCSTI", "libc.ioctl(0, 0x5412, b'x')", 1 },
    };
    for (size_t i = 0; i < sizeof calls / sizeof *calls; i++) {
        if (!selected(calls[i].name))
            continue;
        char code[1024], expect[64];
        snprintf(code, sizeof code,
                 "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                 "libc.syscall.restype = ctypes.c_long\n"
                 "r = %s\nprint(r, ctypes.get_errno())", calls[i].call);
        snprintf(expect, sizeof expect, "-1 %d\n", calls[i].err);
        run_result r = run(sb, code);
        check(strcmp(field(&r, "stdout"), expect) == 0, calls[i].name, "%s", describe(&r));
        done(&r);
    }
    expect_stdout(sb, "seccomp: filter on, no new privileges",
                  "print([l.split()[1] for l in open('/proc/self/status') "
                  "if l.startswith(('Seccomp:', 'NoNewPrivs:'))])", "['1', '2']\n");
}

static int listen_tcp(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

static void test_security(sesh_sandbox *a, sesh_sandbox *b, const char *dir_b)
{
    char code[2048];
    expect_syscalls_denied(a);

    /* Secrets of the host: a token file beside the data directories. */
    if (selected("security: the pool's token file")) {
        char token[700];
        snprintf(token, sizeof token, "%s/token", base);
        FILE *f = fopen(token, "w");
        fputs("secret-token-4711", f);
        fclose(f);
        snprintf(code, sizeof code,
                 "%sattempt('x', lambda: open('%s').read())\n"
                 "import subprocess\n"
                 "print(subprocess.run(['grep', '-rls', 'secret-token-4711', '/etc', '/mnt', '/tmp',"
                 " '/dev', '/run', '/var', '/opt', '/srv'], capture_output=True).stdout)",
                 probes, token);
        expect_stdout(a, "security: the pool's token file", code, "x denied\nb''\n");
    }
    if (selected("security: another session's /mnt/data")) {
        run_result r = run(b, "open('/mnt/data/b-secret.txt', 'w').write('b only')");
        done(&r);
        snprintf(code, sizeof code,
                 "%sattempt('x', lambda: open('%s/b-secret.txt').read())\n"
                 "import os\nprint('b-secret.txt' in os.listdir('/mnt/data'))",
                 probes, dir_b);
        expect_stdout(a, "security: another session's /mnt/data", code, "x denied\nFalse\n");
    }
    if (selected("security: /proc of host processes")) {
        snprintf(code, sizeof code,
                 "import os\npids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
                 "print(len(pids) <= 3, os.path.exists('/proc/%d'), "
                 "open('/proc/1/cmdline', 'rb').read().split(b'\\0')[0])",
                 (int)getpid());
        expect_stdout(a, "security: /proc of host processes", code,
                      zygote ? "True False b'/usr/bin/python3'\n" : "True False b'/usr/bin/bwrap'\n");
    }
    expect_stdout(a, "security: /etc/passwd is the sandbox's own",
                  "import getpass, os, pwd\n"
                  "print(getpass.getuser(), pwd.getpwuid(os.getuid()).pw_dir, "
                  "len(open('/etc/passwd').read().splitlines()))", "sesh /tmp 2\n");
    expect_denied(a, "security: write /mnt (outside data)", "open('/mnt/evil', 'w')");
    expect_denied(a, "security: write /var", "open('/var/evil', 'w')");
    expect_stdout(a, "security: minimal /dev",
                  "import os; print(sorted(os.listdir('/dev')))",
                  "['core', 'fd', 'full', 'null', 'ptmx', 'pts', 'random', 'shm', "
                  "'stderr', 'stdin', 'stdout', 'tty', 'urandom', 'zero']\n");
    if (selected("security: the pool's own port")) {
        int port;
        int fd = listen_tcp(&port);
        snprintf(code, sizeof code,
                 "%sattempt('x', lambda: socket.create_connection(('127.0.0.1', %d), timeout=3))",
                 probes, port);
        expect_stdout(a, "security: the pool's own port", code, "x denied\n");
        close(fd);
    }
    if (selected("security: a symlink to /etc/passwd stays a symlink")) {
        run_result r = run(a, "import os; os.symlink('/etc/passwd', '/mnt/data/passwd-link')");
        char path[700];
        struct stat st;
        snprintf(path, sizeof path, "%s/data0/passwd-link", base);
        check(r.status == SESH_RUN_OK && lstat(path, &st) == 0 && S_ISLNK(st.st_mode),
              "security: a symlink to /etc/passwd stays a symlink", "%s", describe(&r));
        done(&r);
    }
    if (selected("security: allocate 64 GB")) {
        run_result r = run(a, "try:\n    big = bytearray(64 << 30)\nexcept MemoryError:\n"
                              "    print('MemoryError')\n"
                              "import numpy as np\ntry:\n    arr = np.ones(64 << 30, dtype=np.uint8)\n"
                              "except MemoryError:\n    print('MemoryError')");
        check(strcmp(field(&r, "stdout"), "MemoryError\nMemoryError\n") == 0,
              "security: allocate 64 GB", "%s", describe(&r));
        done(&r);
    }
    if (selected("security: fill /tmp")) {
        run_result r = run(a, "import os\nblock = b'x' * (1 << 20)\nn = 0\ntry:\n"
                              "    with open('/tmp/fill', 'wb') as f:\n"
                              "        while n < 4096:\n            f.write(block); n += 1\n"
                              "except OSError as e:\n    print('full', e.errno, n < 1024)\n"
                              "os.remove('/tmp/fill')");
        check(strcmp(field(&r, "stdout"), "full 28 True\n") == 0, "security: fill /tmp", "%s",
              describe(&r));
        done(&r);
    }
    if (selected("security: fork bomb")) {
        /* The interpreter itself takes part in this bomb, so it may be too
         * starved to answer the interrupt: timed out or lost are both
         * contained, as long as nothing of it survives and others go on. */
        long long t = now_ms();
        run_result r = run_opts(a, "import os\nwhile True:\n    try:\n        os.fork()\n"
                                   "    except OSError:\n        pass", 3000, 4096, 0);
        int lost = r.status == SESH_RUN_LOST;
        check(r.status == SESH_RUN_TIMED_OUT || lost, "security: fork bomb is stopped",
              "%s (%lld ms)", describe(&r), now_ms() - t);
        done(&r);
        /* The interrupted cell answered once every process it started was
         * gone (killed and reaped), so the next cell finds none at once. */
        if (!lost)
            expect_stdout(a, "security: fork bomb leaves no process behind",
                          "import os\n"
                          "print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))",
                          "[1, 2]\n");
        else
            check(!sesh_sandbox_alive(a), "security: fork bomb leaves no process behind",
                  "the lost sandbox is still alive");
        expect_stdout(b, "security: fork bomb: another session still works",
                      "import subprocess; print(subprocess.run(['echo', 'ok'], "
                      "capture_output=True, text=True).stdout)", "ok\n\n");
        sesh_sandbox *c = start(dir_b, NULL);
        check(c != NULL, "security: fork bomb: a new session starts", "see above");
        sesh_sandbox_free(c);
    }
    if (selected("security: bomb of child processes")) {
        /* Processes the interrupted cell started are ended, older ones kept. */
        char *dir = new_data_dir();
        sesh_sandbox *c = start(dir, NULL);
        run_result r = run(c, "import subprocess\nkeep = subprocess.Popen(['sleep', '600'])");
        done(&r);
        r = run_opts(c, "import subprocess, time\n"
                        "procs = [subprocess.Popen(['sh', '-c', 'while :; do :; done']) "
                        "for _ in range(40)]\ntime.sleep(600)", 2000, 4096, 0);
        check(r.status == SESH_RUN_TIMED_OUT, "security: bomb of child processes is interrupted",
              "%s", describe(&r));
        done(&r);
        expect_stdout(c, "security: bomb of child processes: only older processes remain",
                      "import os\nprint(len([p for p in os.listdir('/proc') if p.isdigit()]), "
                      "keep.poll())", "3 None\n");
        /* A cell that catches the first interrupt and starts processes
         * after it: they go too, before the cell answers. */
        r = run_opts(c, "import subprocess, time\ntry:\n    time.sleep(600)\n"
                        "except KeyboardInterrupt:\n"
                        "    late = [subprocess.Popen(['sleep', '600']) for _ in range(5)]\n"
                        "    time.sleep(600)", 1000, 4096, 0);
        check(r.status == SESH_RUN_TIMED_OUT, "security: bomb of child processes: started after the interrupt",
              "%s", describe(&r));
        done(&r);
        expect_stdout(c, "security: bomb of child processes: those started after the interrupt end too",
                      "import os\nprint(len([p for p in os.listdir('/proc') if p.isdigit()]), "
                      "keep.poll())", "3 None\n");
        sesh_sandbox_free(c);
        free(dir);
    }
}

/* RLIMIT_NPROC counts per uid: sandboxes sharing one (an unprivileged pool
 * always does) must not share one allowance. */
static void test_shared_uid(void)
{
    if (!selected("processes"))
        return;
    sesh_sandbox_config cfg = { .uid = 65534, .max_processes = 32 };
    char *d1 = new_data_dir(), *d2 = new_data_dir();
    sesh_sandbox *x = start(d1, &cfg), *y = start(d2, &cfg);
    if (!x || !y) {
        check(0, "processes: start", "no sandbox");
    } else {
        run_result r = run(x, "import subprocess\nprocs = []\ntry:\n    for _ in range(100):\n"
                              "        procs.append(subprocess.Popen(['sleep', '60']))\n"
                              "except OSError as e:\n    print(e.errno, len(procs) < 32)");
        check(strcmp(field(&r, "stdout"), "11 True\n") == 0,
              "processes: the sandbox's limit stops it", "%s", describe(&r));
        done(&r);
        expect_stdout(y, "processes: a sandbox of the same uid can still fork",
                      "import subprocess\nprint(subprocess.run(['echo', 'ok'], capture_output=True,"
                      " text=True).stdout, end='')", "ok\n");
        sesh_sandbox *z = start(d2, &cfg);
        check(z != NULL, "processes: a sandbox of the same uid can still start", "see above");
        sesh_sandbox_free(z);
    }
    sesh_sandbox_free(x);
    sesh_sandbox_free(y);
    free(d1);
    free(d2);
}

static void test_disk(const char *data_dir)
{
    if (!selected("disk"))
        return;
    sesh_sandbox_config cfg = { .disk_limit = 64 << 20 };
    sesh_sandbox *sb = start_for("disk", data_dir, &cfg);
    if (!sb)
        return;
    run_result r = run(sb, "with open('big', 'wb') as f:\n    f.write(b'x' * (100 << 20))");
    check(r.status == SESH_RUN_OK && strcmp(status_of(&r), "Failure") == 0 &&
          strstr(field(&r, "stderr"), "File too large"),
          "disk: one file is capped by the disk limit", "%s", describe(&r));
    done(&r);
    long long t = now_ms();
    r = run_opts(sb, "import os\nblock = b'x' * (1 << 20)\ni = 0\nwhile True:\n"
                     "    with open('f%d' % i, 'wb') as f:\n"
                     "        for _ in range(8): f.write(block)\n"
                     "    i += 1", 30000, 4096, 0);
    check(r.status == SESH_RUN_OK && strcmp(status_of(&r), "Failure") == 0 &&
          strstr(field(&r, "stderr"), "over the session's limit") && now_ms() - t < 5000,
          "disk: filling /mnt/data is stopped", "%s (%lld ms)", describe(&r), now_ms() - t);
    done(&r);
    expect_stdout(sb, "disk: code that deletes files still runs",
                  "import os\nfor n in os.listdir('.'): os.remove(n)\nprint(os.listdir('.'))",
                  "[]\n");
    sesh_sandbox_free(sb);
}

static void test_interrupt(const char *data_dir)
{
    if (!selected("timeout"))
        return;
    sesh_sandbox *sb = start_for("timeout", data_dir, NULL);
    if (!sb)
        return;
    run_result r = run(sb, "kept = 'still here'");
    done(&r);
    long long t = now_ms();
    r = run_opts(sb, "import time\nprint('before')\ntime.sleep(60)", 500, 4096, 0);
    long long took = now_ms() - t;
    check(r.status == SESH_RUN_TIMED_OUT && strcmp(status_of(&r), "Failure") == 0 &&
          strstr(field(&r, "stderr"), "KeyboardInterrupt") &&
          strcmp(field(&r, "stdout"), "before\n") == 0 && took < 2500,
          "timeout: sleep interrupted as by Ctrl-C", "%s (%lld ms)", describe(&r), took);
    done(&r);
    r = run_opts(sb, "while True:\n    pass", 300, 4096, 0);
    check(r.status == SESH_RUN_TIMED_OUT && strstr(field(&r, "stderr"), "KeyboardInterrupt"),
          "timeout: busy loop interrupted", "%s", describe(&r));
    done(&r);
    expect_stdout(sb, "timeout: state kept", "print(kept)", "still here\n");

    t = now_ms();
    r = run_opts(sb, "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                     "while True:\n    time.sleep(0.01)", 300, 4096, 0);
    took = now_ms() - t;
    check(r.status == SESH_RUN_LOST && r.err && strstr(r.err, "did not stop") && took < 5000 &&
          !sesh_sandbox_alive(sb),
          "timeout: code ignoring KeyboardInterrupt is killed", "%s (%lld ms)", describe(&r),
          took);
    done(&r);
    r = run(sb, "1");
    check(r.status == SESH_RUN_LOST, "timeout: a killed sandbox stays lost", "%s", describe(&r));
    done(&r);
    sesh_sandbox_free(sb);

    sb = start(data_dir, NULL);
    r = run_opts(sb, "try:\n    while True:\n        n = 1\n"
                 "except KeyboardInterrupt:\n    while True:\n        n = 2",
                 300, 4096, 0);
    check(r.status == SESH_RUN_TIMED_OUT, "timeout: code catching one KeyboardInterrupt gets "
          "another", "%s", describe(&r));
    done(&r);
    r = run_opts(sb, "while True:\n    try:\n        while True:\n            n = 1\n"
                 "    except KeyboardInterrupt:\n        pass", 300, 4096, 0);
    check(r.status == SESH_RUN_LOST, "timeout: code catching every KeyboardInterrupt is killed",
          "%s", describe(&r));
    done(&r);
    sesh_sandbox_free(sb);
}

/* The client, as the server watches it: gone at the first hang-up. */
static int client_waits(sesh_watch *w, short revents)
{
    (void)w;
    return !(revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* A client that goes away while its code runs: the code is interrupted as at a
 * timeout (its state kept); one that stays gets its answer. */
static void test_abandoned(const char *data_dir)
{
    if (!selected("abandoned"))
        return;
    sesh_sandbox *sb = start_for("abandoned", data_dir, NULL);
    if (!sb)
        return;
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
        check(0, "abandoned: socketpair", "%s", strerror(errno));
        sesh_sandbox_free(sb);
        return;
    }
    sesh_watch watch = { .fd = pair[0], .events = POLLRDHUP, .still_waiting = client_waits };
    json_t *req = json_pack("{s:s, s:s}", "op", "execute", "code", "kept = 1");
    run_result r = { 0 };
    r.status = sesh_sandbox_execute(sb, req, 30000, &watch, &r.reply, &r.err);
    json_decref(req);
    check(r.status == SESH_RUN_OK, "abandoned: a client that stays gets its answer", "%s",
          describe(&r));
    done(&r);

    pid_t pid = fork();
    if (pid == 0) {                 /* the client gives up after 300 ms */
        usleep(300 * 1000);
        _exit(0);
    }
    close(pair[1]);                 /* the child holds the only other end */
    long long t = now_ms();
    req = json_pack("{s:s, s:s}", "op", "execute", "code",
                    "import time\nprint('started')\ntime.sleep(60)\nkept = 2");
    r = (run_result){ 0 };
    r.status = sesh_sandbox_execute(sb, req, 30000, &watch, &r.reply, &r.err);
    long long took = now_ms() - t;
    json_decref(req);
    waitpid(pid, NULL, 0);
    check(r.status == SESH_RUN_ABANDONED && strstr(field(&r, "stderr"), "KeyboardInterrupt") &&
          strcmp(field(&r, "stdout"), "started\n") == 0 && took < 5000,
          "abandoned: code interrupted when its client went away", "%s (%lld ms)", describe(&r),
          took);
    done(&r);
    close(pair[0]);
    expect_stdout(sb, "abandoned: state kept", "print(kept)", "1\n");
    sesh_sandbox_free(sb);
}

/* Python: waits until the pool has read all that was written on the channel,
 * so that the runner's own reply, after the cell, comes in a read of its own. */
#define WAIT_READ "\nimport fcntl, sys, termios\nout = bytearray(4)\n" \
    "while fcntl.ioctl(3, termios.TIOCOUTQ, out) == 0 and int.from_bytes(out, sys.byteorder):\n" \
    "    os.sched_yield()"

static void test_death(const char *data_dir)
{
    static const struct { const char *name, *code, *expect; } deaths[] = {
        { "death: os._exit", "import os; os._exit(3)", "status 3" },
        { "death: kill -9 self", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
          "signal 9" },
        { "death: segfault", "import ctypes; ctypes.string_at(0)", "signal 11" },
        { "death: a 32-bit system call",
          "import ctypes, mmap\n"
          "m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
          "m.write(b'\\xb8\\x14\\x00\\x00\\x00\\xcd\\x80\\xc3')\n"   /* getpid via int 0x80 */
          "ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))()",
          /* SIGSYS from the filter; SIGSEGV where the kernel has no 32-bit entry */
          "killed by signal" },
        { "death: runner's channel closed", "import os; os.close(3)", "interpreter lost" },
        { "death: garbage reply", "import os; os.write(3, b'\\x00\\x00\\x00\\x05hello')" WAIT_READ,
          "not valid JSON" },
        { "death: oversized reply", "import os; os.write(3, b'\\x7f\\xff\\xff\\xff')",
          "over the execute reply's limit of 4308992 bytes" },
        { "death: reply out of turn",
          "import os, json; b = json.dumps({'status': 'Success'}).encode(); "
          "os.write(3, len(b).to_bytes(4, 'big') + b)" WAIT_READ, "carries no request number" },
        { "death: reply of the wrong shape",       /* numbered as the runner's own */
          "import os, json, sys\ndef seq():\n    f = sys._getframe()\n"
          "    while 'seq' not in (f.f_locals.get('request') or {}): f = f.f_back\n"
          "    return f.f_locals['request']['seq']\n"
          "b = json.dumps({'status': 'Success', 'seq': seq()}).encode()\n"
          "os.write(3, len(b).to_bytes(4, 'big') + b)" WAIT_READ, "no string 'stdout'" },
        { "death: reply nested too deep", "import os; os.write(3, b'\\x00\\x01\\x00\\x00' + b'[' * 65536)",
          "nests JSON deeper than 2 levels" },
        { "death: reply of too many values",
          "import os; b = b'[' + b'0,' * 40000 + b'0]'; os.write(3, len(b).to_bytes(4, 'big') + b)",
          "more than 64 JSON values" },
    };
    for (size_t i = 0; i < sizeof deaths / sizeof *deaths; i++) {
        if (!selected(deaths[i].name))
            continue;
        sesh_sandbox *sb = start(data_dir, NULL);
        if (!sb) {
            check(0, deaths[i].name, "no sandbox");
            continue;
        }
        long long t = now_ms();
        run_result r = run_opts(sb, deaths[i].code, 10000, 4096, 0);
        check(r.status == SESH_RUN_LOST && r.err && strstr(r.err, deaths[i].expect) &&
              now_ms() - t < 5000, deaths[i].name, "%s", describe(&r));
        done(&r);
        sesh_sandbox_free(sb);
    }
}

static void test_metadata(sesh_sandbox *sb)
{
    if (!selected("metadata"))
        return;
    json_t *req = json_pack("{s:s}", "op", "metadata");
    json_t *reply = NULL;
    char *err = NULL;
    sesh_run_status st = sesh_sandbox_execute(sb, req, 30000, NULL, &reply, &err);
    json_decref(req);
    json_t *pkgs = json_object_get(reply, "packages");
    int numpy = 0;
    size_t i;
    json_t *p;
    json_array_foreach(pkgs, i, p)
        if (strcmp(json_string_value(json_object_get(p, "name")), "numpy") == 0)
            numpy = 1;
    check(st == SESH_RUN_OK && strncmp(json_string_value(json_object_get(reply, "python")), "3.", 2) == 0
          && numpy, "metadata: python version and packages", "status %d err %s", st,
          err ? err : "-");
    json_decref(reply);
    free(err);
}


/* ---- the fork path (fork mode) ---- */

/* What a sandbox shows of itself, as lines to compare across paths: its
 * mounts (the names of bwrap's temporary files, descriptor numbers in the
 * overlay's options and uids made alike; without the forked sandbox's
 * preloaded library, tested apart), its capabilities, no_new_privs and
 * seccomp mode, its limits, environment, pid and working directory. */
static const char portrait[] =
    "import os, re, resource\n"
    "for line in open('/proc/self/mountinfo'):\n"
    "    f = line.split()\n"
    "    if f[4] == '/etc/ld.so.preload' or f[4].startswith('/etc/sesh-oom-'):\n"
    "        continue\n"
    "    sep = f.index('-')\n"
    "    root = re.sub(r'/bindfile\\w+//deleted|/data\\d+$', '/X', f[3])\n"
    "    opts = re.sub(r'/proc/self/fd/\\d+', 'FD', f[sep + 3])\n"
    "    print(f[4], root, f[5], f[sep + 1], re.sub(r'(uid|gid)=\\d+', r'\\1=N', opts))\n"
    "print([l.strip() for l in open('/proc/self/status')\n"
    "       if l.startswith(('Cap', 'NoNewPrivs', 'Seccomp:'))])\n"
    "print([resource.getrlimit(getattr(resource, 'RLIMIT_' + r))\n"
    "       for r in ('AS', 'FSIZE', 'NOFILE', 'CORE', 'NPROC')])\n"
    "print(sorted(os.environ.items()), os.getpid(), os.getcwd(), os.getppid())\n"
    "accounts = open('/etc/passwd').read() + open('/etc/group').read()\n"
    "print(accounts.replace(str(os.getuid()), 'UID'), os.uname().nodename)";

/* The sandbox's namespaces, one "name:[inode]" a line. */
static const char namespaces[] =
    "import os\n"
    "for n in ('user', 'mnt', 'pid', 'net', 'ipc', 'uts', 'cgroup'):\n"
    "    print(os.readlink('/proc/self/ns/' + n))";

static char *stdout_of(sesh_sandbox *sb, const char *code)
{
    run_result r = run(sb, code);
    char *out = strdup(r.status == SESH_RUN_OK && strcmp(status_of(&r), "Success") == 0
                       ? field(&r, "stdout") : describe(&r));
    done(&r);
    return out;
}

/* The first child of a process, -1 when none. */
static pid_t child_of(pid_t pid)
{
    char path[64];
    pid_t child = -1;
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
    FILE *f = fopen(path, "r");
    if (!f || fscanf(f, "%d", &child) != 1)
        child = -1;
    if (f)
        fclose(f);
    return child;
}

/* The runner's descriptors as the host sees them: "N:what" for each, pipes
 * and sockets without their inode. The runner: the python3 below the
 * sandbox's outer process (bwrap, its init, then python3; or init, then
 * python3 on the fork path). */
static char *descriptors(sesh_sandbox *sb)
{
    char path[64], list[1024] = "", target[256], comm[32] = "";
    pid_t runner = sesh_sandbox_pid(sb);
    while (runner > 0 && strcmp(comm, "python3\n") != 0) {
        runner = child_of(runner);
        snprintf(path, sizeof path, "/proc/%d/comm", (int)runner);
        FILE *f = fopen(path, "r");
        if (!f || !fgets(comm, sizeof comm, f))
            comm[0] = 0;
        if (f)
            fclose(f);
    }
    for (int fd = 0; fd < 64 && runner > 0; fd++) {
        snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)runner, fd);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n < 0)
            continue;
        target[n] = 0;
        char *bracket = strchr(target, ':');
        if (bracket && (strncmp(target, "pipe", 4) == 0 || strncmp(target, "socket", 6) == 0))
            *bracket = 0;
        size_t len = strlen(list);
        snprintf(list + len, sizeof list - len, "%s%d:%s", len ? " " : "", fd, target);
    }
    return strdup(list);
}

/* The threads of a process (its status's Threads line), -1 when unknown. */
static int threads_of(pid_t pid)
{
    char path[64], line[256];
    int n = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    if (f)
        fclose(f);
    return n;
}

/* Two sandboxes forked by the fork server and one bwrap started: the same
 * confinement, each in namespaces of its own. */
static void test_fork_path(void)
{
    if (!zygote || !selected("fork path"))
        return;
    char *d1 = new_data_dir(), *d2 = new_data_dir(), *d3 = new_data_dir();
    sesh_sandbox_config plain = { .data_dir = d3 };
    char *err = NULL;
    sesh_sandbox *a = start(d1, NULL), *b = start(d2, NULL);
    sesh_sandbox *w = sesh_sandbox_start(&plain, &err);
    check(a && b && w, "fork path: two forked sandboxes and one of bwrap start", "%s",
          err ? err : "see above");
    free(err);
    if (a && b && w) {
        char *init_a = stdout_of(a, "print(open('/proc/1/cmdline', 'rb').read().split(b'\\0')[:2])");
        char *init_w = stdout_of(w, "print(open('/proc/1/cmdline', 'rb').read().split(b'\\0')[:2])");
        check(strcmp(init_a, "[b'/usr/bin/python3', b'-E']\n") == 0 &&
              strncmp(init_w, "[b'/usr/bin/bwrap'", 18) == 0,
              "fork path: forked means forked (init is the fork server's python, not bwrap)",
              "forked: %s, bwrap: %s", init_a, init_w);
        free(init_a);
        free(init_w);

        char *pa = stdout_of(a, portrait), *pb = stdout_of(b, portrait), *pw = stdout_of(w, portrait);
        check(strcmp(pa, pw) == 0 && strcmp(pa, pb) == 0,
              "fork path: mounts, capabilities, no_new_privs, seccomp, limits, environment, "
              "accounts as bwrap's", "forked:\n%s\nbwrap:\n%s", pa, pw);
        check(strstr(pa, "Seccomp:\\t2") && strstr(pa, "NoNewPrivs:\\t1") &&
              strstr(pa, "CapEff:\\t0000000000000000") && strstr(pa, "CapBnd:\\t0000000000000000"),
              "fork path: seccomp filter, no_new_privs, no capability", "%s", pa);
        free(pa);
        free(pb);
        free(pw);

        char code[128], want[64];
        snprintf(code, sizeof code, "import os; print(os.getuid(), os.getgid())");
        snprintf(want, sizeof want, "%u %u\n", (unsigned)sesh_sandbox_uid(a),
                 (unsigned)(geteuid() == 0 ? sesh_sandbox_uid(a) : getegid()));
        expect_stdout(a, "fork path: the sandbox's own uid and gid", code, want);

        char *na = stdout_of(a, namespaces), *nb = stdout_of(b, namespaces);
        int apart = 1;
        char mine[64];
        const char *la = na, *lb = nb;
        static const char *const kinds[] = { "user", "mnt", "pid", "net", "ipc", "uts", "cgroup" };
        for (int i = 0; i < 7 && apart; i++) {
            char p[64];
            snprintf(p, sizeof p, "/proc/self/ns/%s", kinds[i]);
            ssize_t n = readlink(p, mine, sizeof mine - 1);
            mine[n > 0 ? n : 0] = 0;
            size_t len_a = strcspn(la, "\n"), len_b = strcspn(lb, "\n");
            apart = len_a > 0 && strncmp(la, kinds[i], strlen(kinds[i])) == 0 &&
                    (len_a != len_b || strncmp(la, lb, len_a) != 0) &&
                    (strlen(mine) != len_a || strncmp(la, mine, len_a) != 0);
            la += len_a + (la[len_a] != 0);
            lb += len_b + (lb[len_b] != 0);
        }
        check(apart, "fork path: namespaces of its own (user, mount, pid, net, ipc, uts, cgroup)",
              "one forked:\n%sanother:\n%s", na, nb);
        free(na);
        free(nb);

        char *fa = descriptors(a), *fw = descriptors(w);
        check(strcmp(fa, fw) == 0 && strncmp(fa, "0:/dev/null 1:pipe 2:pipe 3:socket", 34) == 0,
              "fork path: the runner's descriptors as bwrap's (0-3, then Python's own)",
              "forked: %s, bwrap: %s", fa, fw);
        free(fa);
        free(fw);

        /* 1000 x what the runner shares with the server / 1 GiB, the default
         * session memory: 1 to 1000 */
        expect_stdout(a, "fork path: a program it executes weighs the pages the runner shares with "
                         "the fork server, for the kernel's choice when out of memory",
                      "import subprocess\n"
                      "lib = open('/etc/ld.so.preload').read().strip()\n"
                      "weight = int(lib[len('/etc/sesh-oom-'):-len('.so')])\n"
                      "child = subprocess.run(['cat', '/proc/self/oom_score_adj'], capture_output=True,"
                      " text=True).stdout\n"
                      "print(0 < weight <= 1000, int(child) == weight, open('/proc/self/oom_score_adj').read())",
                      "True True 0\n\n");
        expect_stdout(a, "fork path: init is undumpable (its /proc is closed to the runner)",
                      "try:\n    open('/proc/1/environ').read()\n    print('readable')\n"
                      "except PermissionError:\n    print('closed')", "closed\n");
    }
    json_t *st = sesh_zygote_status(zygote, NULL);
    json_t *pid = json_object_get(st, "pid");
    int n = json_is_integer(pid) ? threads_of((pid_t)json_integer_value(pid)) : -1;
    check(n == 1, "fork path: no thread alive in the fork server", "%d threads", n);
    json_decref(st);
    sesh_sandbox_free(a);
    sesh_sandbox_free(b);
    sesh_sandbox_free(w);
    free(d1);
    free(d2);
    free(d3);
}

/* Fork mode: the fork server this process keeps, set up as a pool sets it
 * up (a pool that is not root in a user namespace of its own), ready. */
static int start_fork_server(void)
{
    char *note = sesh_datadir_setup(base);
    printf("     (%s)\n", note ? note : "no note");
    free(note);
    sesh_zygote_config zc = { 0 };
    zygote = sesh_zygote_new(&zc);
    const char *state = "starting";
    json_t *st = NULL;
    for (long long until = now_ms() + 180000; now_ms() < until; ) {
        json_decref(st);
        st = sesh_zygote_status(zygote, NULL);
        state = json_string_value(json_object_get(st, "state"));
        if (!state || strcmp(state, "starting") != 0)
            break;
        usleep(20000);
    }
    const char *why = json_string_value(json_object_get(st, "reason"));
    check(state && strcmp(state, "ready") == 0, "fork path: the fork server is ready", "%s: %s",
          state ? state : "?", why ? why : "no reason");
    int ok = state && strcmp(state, "ready") == 0;
    json_decref(st);
    return ok;
}

/* ---- cgroups (host/pool/cgroup.h) ---- */

static char *slurp(const char *path)
{
    static char buf[65536];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    buf[n > 0 ? n : 0] = 0;
    return buf;
}

static void expect_dir(const char *name, const char *self, const char *mounts,
                       const char *controller, const char *expect)
{
    char *got = sesh_cgroup_own_dir(self, mounts, controller);
    check(expect ? got && strcmp(got, expect) == 0 : got == NULL, name, "got %s, want %s",
          got ? got : "NULL", expect ? expect : "NULL");
    free(got);
}

/* Finding the pool's own groups, from texts of /proc/self/cgroup and
 * /proc/self/mountinfo as v1, v2 and mixed hosts write them. */
static void test_cgroup_parsing(void)
{
    if (!selected("cgroup: parse"))
        return;
    static const char v1_self[] =
        "9:name=systemd:/\n8:pids:/pool\n4:memory:/process_api/ab12\n3:cpuset:/\n"
        "2:cpu,cpuacct:/user.slice\n0::/\n";
    static const char v1_mounts[] =
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime shared:9 - cgroup cgroup rw,cpuset\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:7 - cgroup cgroup rw,cpu,cpuacct\n"
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:10 - cgroup cgroup rw,memory\n"
        "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
    expect_dir("cgroup: parse v1 memory", v1_self, v1_mounts, "memory",
               "/sys/fs/cgroup/memory/process_api/ab12");
    expect_dir("cgroup: parse v1 cpu mounted with cpuacct, not cpuset", v1_self, v1_mounts, "cpu",
               "/sys/fs/cgroup/cpu,cpuacct/user.slice");
    expect_dir("cgroup: parse v1 pids", v1_self, v1_mounts, "pids", "/sys/fs/cgroup/pids/pool");
    expect_dir("cgroup: parse v1 controller not mounted", v1_self, v1_mounts, "blkio", NULL);
    expect_dir("cgroup: parse hybrid host's v2 root", v1_self, v1_mounts, NULL,
               "/sys/fs/cgroup/unified");

    static const char v2_self[] = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/"
                                  "run-r1.scope\n";
    static const char v2_mounts[] =
        "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/root rw\n"
        "26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 "
        "cgroup2 rw,nsdelegate,memory_recursiveprot\n";
    expect_dir("cgroup: parse v2 delegated group", v2_self, v2_mounts, NULL,
               "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/run-r1.scope");
    expect_dir("cgroup: parse v2 host has no v1 memory", v2_self, v2_mounts, "memory", NULL);
    /* A container's view: the hierarchy mounted from the container's group. */
    static const char part_mounts[] =
        "700 690 0:30 /docker/c0ffee /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw\n";
    expect_dir("cgroup: parse v2 mount of part of the hierarchy", "0::/docker/c0ffee/sub\n",
               part_mounts, NULL, "/sys/fs/cgroup/sub");
    expect_dir("cgroup: parse v2 group outside the mount", "0::/docker/other\n", part_mounts,
               NULL, NULL);
    expect_dir("cgroup: parse v2 group outside the cgroup namespace", "0::/../../user.slice\n",
               v2_mounts, NULL, NULL);
    expect_dir("cgroup: parse escaped mount point", "0::/a b\n",
               "26 22 0:23 / /tmp/my\\040cg rw - cgroup2 cgroup2 rw\n", NULL, "/tmp/my cg/a b");

    static const char events[] = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
    check(sesh_cgroup_count(events, "oom_kill") == 2 && sesh_cgroup_count(events, "oom") == 3 &&
          sesh_cgroup_count(events, "swap") == -1 &&
          sesh_cgroup_count("oom_kill_disable 0\nunder_oom 0\noom_kill 7\n", "oom_kill") == 7,
          "cgroup: parse memory.events and memory.oom_control counts", "see the code");
}

/* Where this test process is in the v2 hierarchy (the "0::" line). */
static const char *v2_path(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
    char *text = slurp(path);
    char *line = strstr(text, "0::");
    if (!line)
        return "";
    char *end = strchr(line, '\n');
    if (end)
        *end = 0;
    return line + 3;
}

/* The v2 mechanics, for real: the pool moves into a leaf of its own, hands
 * the controller down, a sandbox enters its group before bwrap runs, sees
 * nothing of the host's tree, and everything is given back at teardown;
 * groups of a pool that is gone are removed. Where the host's v2 has no
 * memory controller (it is on v1) another one stands in, and no memory
 * limit is tried. */
static void test_cgroup_v2(void)
{
    if (!selected("cgroup: v2"))
        return;
    char *self = strdup(slurp("/proc/self/cgroup")), *mounts = strdup(slurp("/proc/self/mountinfo"));
    char *home = sesh_cgroup_own_dir(self, mounts, NULL);
    char controllers[256] = "";
    if (home) {
        char path[1024];
        snprintf(path, sizeof path, "%s/cgroup.controllers", home);
        snprintf(controllers, sizeof controllers, "%s", slurp(path));
    }
    const char *stand_in = strstr(controllers, "memory") ? "memory" :
                           strstr(controllers, "hugetlb") ? "hugetlb" :
                           strstr(controllers, "pids") ? "pids" : NULL;
    if (!stand_in) {
        printf("     (cgroup: v2 skipped: no cgroup2 group with a controller here)\n");
        free(self); free(mounts); free(home);
        return;
    }
    char *why = NULL;
    if (geteuid() != 0) {
        /* Not root and not delegated: refused, with what to do. */
        int rc = sesh_cgroup_setup_from(NULL, NULL, 2, stand_in, &why);
        check(rc < 0 && why && strstr(why, "not delegated") && strstr(why, "Delegate=yes") &&
              !sesh_cgroup_version(),
              "cgroup: v2 not delegated: refused, saying what to do", "%s", why ? why : "-");
        free(why);
        sesh_cgroup_teardown();
        free(self); free(mounts); free(home);
        return;
    }
    /* A group of a pool that was killed (a pid that no longer runs). */
    pid_t gone = fork();
    if (gone == 0)
        _exit(0);
    waitpid(gone, NULL, 0);
    char stale[1024], stale_sb[1100], path[1200];
    snprintf(stale, sizeof stale, "%s/sesh-pool-%d", home, (int)gone);
    snprintf(stale_sb, sizeof stale_sb, "%s/sessions", stale);
    int made_stale = mkdir(stale, 0755) == 0 && mkdir(stale_sb, 0755) == 0;
    snprintf(path, sizeof path, "%s/sb-3", stale_sb);
    made_stale = made_stale && mkdir(path, 0755) == 0;
    char before[256];
    snprintf(path, sizeof path, "%s/cgroup.subtree_control", home);
    snprintf(before, sizeof before, "%s", slurp(path));
    char start_path[512];
    snprintf(start_path, sizeof start_path, "%s", v2_path(getpid()));

    int rc = sesh_cgroup_setup_from(NULL, NULL, 2, stand_in, &why);
    check(rc == 0 && strcmp(sesh_cgroup_version(), "v2") == 0 &&
          strstr(sesh_cgroup_controllers(), stand_in), "cgroup: v2 set up", "%s",
          why ? why : "-");
    free(why);
    if (rc != 0) {
        free(self); free(mounts); free(home);
        return;
    }
    struct stat st;
    check(made_stale && stat(stale, &st) < 0 && errno == ENOENT,
          "cgroup: v2 groups of a pool that is gone are removed", "%s still there", stale);
    char mine[600];
    snprintf(mine, sizeof mine, "/sesh-pool-%d/pool", (int)getpid());
    const char *now = v2_path(getpid());
    check(strlen(now) >= strlen(mine) && strcmp(now + strlen(now) - strlen(mine), mine) == 0,
          "cgroup: v2 the pool moves into a leaf of its own", "in %s", now);

    char *dir = new_data_dir();
    sesh_sandbox_config cfg = { .defer_plots = 1 };
    sesh_sandbox *sb = start_for("cgroup: v2", dir, &cfg);
    if (sb) {
        const char *outer = v2_path(sesh_sandbox_pid(sb));
        char want[600];
        snprintf(want, sizeof want, "/sesh-pool-%d/sessions/sb-", (int)getpid());
        check(strstr(outer, want) != NULL, "cgroup: v2 the sandbox runs in a group of its own",
              "bwrap in %s", outer);
        expect_stdout(sb, "cgroup: v2 the sandbox sees nothing of the host's groups",
                      "print(open('/proc/self/cgroup').read().strip().split('\\n')[-1])",
                      "0::/\n");
        sesh_sandbox_free(sb);
    }
    sesh_cgroup_teardown();
    snprintf(path, sizeof path, "%s/sesh-pool-%d", home, (int)getpid());
    char after[256];
    char control[1200];
    snprintf(control, sizeof control, "%s/cgroup.subtree_control", home);
    snprintf(after, sizeof after, "%s", slurp(control));
    check(stat(path, &st) < 0 && strcmp(v2_path(getpid()), start_path) == 0 &&
          strcmp(before, after) == 0,
          "cgroup: v2 teardown gives everything back", "%s: %s; in %s; subtree '%s' was '%s'",
          path, stat(path, &st) == 0 ? "still there" : "gone", v2_path(getpid()), after, before);
    free(dir);
    free(self); free(mounts); free(home);
}

/* Where the memory controller is on v1 (these machines): a session's
 * processes and its files in /tmp and /dev/shm are bounded together; past
 * the bound the session gets a clear error, other sessions go on. */
static void test_cgroup_v1(void)
{
    if (!selected("cgroup: v1"))
        return;
    char *self = strdup(slurp("/proc/self/cgroup")), *mounts = strdup(slurp("/proc/self/mountinfo"));
    char *own = sesh_cgroup_own_dir(self, mounts, "memory");
    free(self);
    free(mounts);
    if (!own) {
        printf("     (cgroup: v1 skipped: no v1 memory hierarchy here)\n");
        return;
    }
    char *why = NULL;
    int rc = sesh_cgroup_setup_from(NULL, NULL, 1, NULL, &why);
    if (geteuid() != 0) {
        check(rc < 0 && why && strstr(why, "not writable"), "cgroup: v1 refused to a user, saying why",
              "%s", why ? why : "-");
        free(why);
        sesh_cgroup_teardown();
        free(own);
        return;
    }
    check(rc == 0 && strcmp(sesh_cgroup_version(), "v1") == 0 &&
          strstr(sesh_cgroup_controllers(), "memory"), "cgroup: v1 set up", "%s", why ? why : "-");
    free(why);
    if (rc != 0) {
        free(own);
        return;
    }
    char *d1 = new_data_dir(), *d2 = new_data_dir();
    sesh_sandbox_config cfg = { .defer_plots = 1, .session_memory = 256 << 20 };
    sesh_sandbox *a = start_for("cgroup: v1", d1, &cfg), *b = start_for("cgroup: v1", d2, &cfg);
    if (a && b) {
        char group[700];
        snprintf(group, sizeof group, "%s/sesh-pool-%d", own, (int)getpid());
        struct stat st;
        check(stat(group, &st) == 0, "cgroup: v1 the pool's group", "no %s", group);
        expect_stdout(a, "cgroup: v1 the sandbox sees nothing of the host's groups",
                      "print(all(l.endswith(':/') for l in open('/proc/self/cgroup').read().split()))",
                      "True\n");
        run_result r = run(a, "kept = 'still here'");
        done(&r);
        /* Three processes of 150 MB, each holding it until all three have
         * it (or died trying): at most one fits. */
        r = run(a, "import subprocess, sys\n"
                   "code = 'import sys; b = bytearray(150 << 20); print(1, flush=True); "
                   "sys.stdin.read()'\n"
                   "procs = [subprocess.Popen([sys.executable, '-c', code], stdin=subprocess.PIPE,"
                   " stdout=subprocess.PIPE) for _ in range(3)]\n"
                   "held = sum(p.stdout.readline() == b'1\\n' for p in procs)\n"
                   "for p in procs: p.stdin.close()\n"
                   "print(held < 3, sorted(p.wait() for p in procs)[0])");
        check(r.status == SESH_RUN_OK && strcmp(status_of(&r), "Failure") == 0 &&
              strcmp(field(&r, "stdout"), "True -9\n") == 0 &&
              strstr(field(&r, "stderr"), "ran out of memory") &&
              strstr(field(&r, "stderr"), "268435456 bytes"),
              "cgroup: v1 processes past the session's memory: killed, and the answer says so",
              "%s", describe(&r));
        done(&r);
        expect_stdout(a, "cgroup: v1 the interpreter and its state survive", "print(kept)",
                      "still here\n");
        r = run(a, "block = b'x' * (1 << 20)\n"
                   "for path, n in (('/tmp/fill', 200), ('/dev/shm/fill', 60)):\n"
                   "    with open(path, 'wb') as f:\n"
                   "        for _ in range(n): f.write(block)");
        const char *said = r.reply ? field(&r, "stderr") : r.err ? r.err : "";
        check((r.status == SESH_RUN_LOST || strcmp(status_of(&r), "Failure") == 0) &&
              strstr(said, "ran out of memory") && strstr(said, "/tmp and /dev/shm"),
              "cgroup: v1 files in /tmp and /dev/shm count against the session's memory", "%s",
              describe(&r));
        done(&r);
        expect_stdout(b, "cgroup: v1 another session goes on", "print(6 * 7)", "42\n");
        sesh_sandbox_free(a);
        a = start_for("cgroup: v1", d1, &cfg);
        if (a)
            expect_stdout(a, "cgroup: v1 the session starts again", "print('back')", "back\n");
    }
    sesh_sandbox_free(a);
    sesh_sandbox_free(b);
    sesh_cgroup_teardown();
    char group[700];
    snprintf(group, sizeof group, "%s/sesh-pool-%d", own, (int)getpid());
    struct stat st;
    check(stat(group, &st) < 0 && errno == ENOENT, "cgroup: v1 teardown removes the groups",
          "%s still there", group);
    free(own);
    free(d1);
    free(d2);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    filter = argc > 1 ? argv[1] : NULL;
    const char *tmp = getenv("SESH_TEST_TMP");
    snprintf(base, sizeof base, "%s/sandbox-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 2;
    }

    const char *fork_mode = getenv("SESH_SANDBOX_FORK");
    if (fork_mode && *fork_mode && !start_fork_server()) {
        printf("%d passed, %d failed\n", passed, failed);
        return 1;
    }
    char *dir1 = new_data_dir(), *dir2 = new_data_dir(), *dir3 = new_data_dir();
    long long t = now_ms();
    sesh_sandbox *a = start(dir1, NULL);
    long long took = now_ms() - t;
    t = now_ms();
    sesh_sandbox *b = start(dir2, NULL);
    long long took2 = now_ms() - t;
    check(a && b, "start: two sandboxes", "see above");
    if (!a || !b) {
        sesh_sandbox_free(a);
        sesh_sandbox_free(b);
        free(dir1);
        free(dir2);
        free(dir3);
        printf("%d passed, %d failed\n", passed, failed);
        return 1;
    }
    printf("     (sandboxes started in %lld ms, then %lld ms)\n", took, took2);

    test_results(a);
    test_failure(a);
    test_state(a, b);
    test_streams(a);
    test_files(a, dir1);
    test_containment(a);
    test_metadata(a);
    test_security(a, b, dir2);
    test_shared_uid();
    test_disk(dir3);
    test_interrupt(dir3);
    test_abandoned(dir3);
    test_death(dir3);
    expect_stdout(b, "after all: the other sandbox still works", "print('fine')", "fine\n");
    sesh_sandbox_free(a);
    sesh_sandbox_free(b);
    test_fork_path();
    if (zygote) {
        /* the cgroup module wants no process but ours where it sets up: the
         * pool sets it up before its fork server starts */
        sesh_zygote_free(zygote);
    } else {
        test_cgroup_parsing();
        test_cgroup_v2();
        test_cgroup_v1();
    }

    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", base);
    free(dir1);
    free(dir2);
    free(dir3);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
