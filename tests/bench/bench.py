"""bench.py — the driver of `make bench`.

    /usr/bin/python3 tests/bench/bench.py --build build-bench [--quick] [--only NAME,...]

Measures sesh and sesh-pool against what users would pick instead, each
figure as median and 95th percentile, the alternative in the same run (and,
where it matters, interleaved with sesh so both see the same machine noise).
Prints one table, writes BUILD/bench/bench.json and BUILD/bench/bench.png, and
exits 0 whatever the figures: it measures, it does not judge.

A figure that cannot be measured (a part not built yet, a pool that refuses
an option, a client that fails) is reported as n/a with the reason; the
others still run.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import procs   # noqa: E402
import stats   # noqa: E402

PYTHON = "/usr/bin/python3"     # Debian's, with requests (not the one first on PATH)
LUA = "/usr/bin/lua5.4"
MB = 1 << 20


def scratch_dir():
    """Where files to upload, downloads and the pools' session folders go: a
    tmpfs when there is one with room, so that transfers measure sesh and the
    pool rather than this machine's disk (both clients alike)."""
    for d in ("/dev/shm", os.environ.get("XDG_RUNTIME_DIR")):
        try:
            st = os.statvfs(d)
        except (TypeError, OSError):
            continue
        if st.f_bavail * st.f_frsize >= 1 << 30 and os.access(d, os.W_OK):
            return d
    return None     # the system's temp folder


class Bench:
    """What every figure needs: binaries, the clients' environment, a scratch
    folder, the repetition counts."""

    def __init__(self, build, quick, sesh=None, pool=None):
        self.build = os.path.abspath(build)
        self.sesh = os.path.abspath(sesh or os.path.join(self.build, "bin", "sesh"))
        self.pool_bin = os.path.abspath(pool or os.path.join(self.build, "bin", "sesh-pool"))
        self.out = os.path.join(self.build, "bench")
        os.makedirs(self.out, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix="sesh-bench.", dir=scratch_dir())
        self.quick = quick
        self.sesh_client = os.path.join(HERE, "sesh_client.lua")
        self.alt_client = os.path.join(HERE, "alt_client.py")
        self.env = self._client_env()
        self._help = None
        self._fresh = None
        self.pools = 0
        for old in os.listdir(self.out):
            if old.startswith("pool-") and old.endswith(".log"):
                os.unlink(os.path.join(self.out, old))

    def reps(self, full, quick):
        return quick if self.quick else full

    def _client_env(self):
        """The clients never touch the user's own pool, Azure settings or Lua
        init."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AZURE_", "LUA_", "IDENTITY_", "POOL_MANAGEMENT"))}
        run = os.path.join(self.tmp, "run")
        os.makedirs(run, mode=0o700, exist_ok=True)
        env.update(XDG_RUNTIME_DIR=run, XDG_STATE_HOME=os.path.join(self.tmp, "state"),
                   XDG_CACHE_HOME=os.path.join(self.tmp, "cache"))
        return env

    def require(self, *paths):
        for p in paths:
            if not os.access(p, os.X_OK):
                raise RuntimeError(f"{os.path.relpath(p)} is not built")

    def pool(self, *args, unix=False):
        """A fresh pool, its fork server loaded (a pool that has one); its log
        stays in the output folder (pool-N.log)."""
        self.require(self.pool_bin)
        self.pools += 1
        log = os.path.join(self.out, f"pool-{self.pools}.log")
        pool = procs.Pool(self.pool_bin, self.tmp, log, args, unix=unix)
        if self.has_option("--no-fork-server"):
            try:
                pool.settle()
            except RuntimeError:
                pool.stop()
                raise
        return pool

    def has_option(self, name):
        """Does the pool under test know this option (its --help says)?"""
        if self._help is None:
            self._help = subprocess.run([self.pool_bin, "--help"], capture_output=True,
                                        text=True, timeout=10)
        return name in self._help.stdout + self._help.stderr

    def ready_pool(self, n):
        """A pool keeping n sandboxes started ahead of demand."""
        if not self.has_option("--ready-sessions"):
            raise RuntimeError("sesh-pool has no --ready-sessions yet")
        return self.pool("--ready-sessions", str(n))

    def run_sesh(self, pool, op, *args, timeout=120):
        self.require(self.sesh)
        cmd = [self.sesh, self.sesh_client, op, pool.endpoint, pool.token_file,
               *map(str, args)]
        return procs.run_client(cmd, self.env, timeout, label="sesh " + op)

    def run_alt(self, pool, op, *args, timeout=120):
        cmd = [PYTHON, self.alt_client, op, pool.endpoint, pool.token_file,
               *map(str, args)]
        return procs.run_client(cmd, self.env, timeout, label="python " + op)


def side(fn):
    """Runs one side of a figure; returns (result, None) or (None, reason)."""
    try:
        return fn(), None
    except Exception as e:     # one side failing must not void the other
        return None, f"{type(e).__name__}: {e}"


def figure(name, unit, sesh, alt, alt_name, higher_is_better=False, target=None,
           met=None, target_value=None, errors=(), **extra):
    """One row of the table. target is the issue's goal as text, met decides
    it from the row, target_value is where the chart draws it."""
    f = {"name": name, "unit": unit, "sesh": sesh, "alt": alt, "alt_name": alt_name,
         "higher_is_better": higher_is_better, "target": target,
         "target_value": target_value, **extra}
    f["ratio"] = stats.ratio(sesh and sesh["p50"], alt and alt["p50"], higher_is_better)
    f["met"] = None
    if target and sesh and met is not None:
        try:
            f["met"] = bool(met(f))
        except TypeError:
            f["met"] = None
    notes = [f"{who}: {why}" for who, why in errors if why]
    if notes:
        f["note"] = "n/a " + "; ".join(notes)
    return f


# ---- 1. start-up ---------------------------------------------------------

def spawn_time(argv, env):
    """Wall time of one run of argv, spawned with posix_spawn (the cheapest
    way Python has), output discarded."""
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        t0 = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=[
            (os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
            (os.POSIX_SPAWN_DUP2, devnull, 2)])
        _, status = os.waitpid(pid, 0)
        elapsed = time.perf_counter() - t0
    finally:
        os.close(devnull)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {os.waitstatus_to_exitcode(status)}")
    return elapsed


def fig_startup(b):
    b.require(b.sesh)
    cmds = {
        "sesh": [b.sesh, "-e", ""],
        "sesh+sessions": [b.sesh, "-e", 'require "sessions"'],
        "lua": [LUA, "-e", ""],
        "python": [PYTHON, "-c", "import requests"],
    }
    # Interleaved rounds: each command sees the same moments of machine noise.
    samples = {k: [] for k in cmds}
    rounds = b.reps(40, 10)
    for i in range(rounds + 3):
        for k, argv in cmds.items():
            try:
                t = spawn_time(argv, b.env)
            except RuntimeError:
                if k != "sesh+sessions":
                    raise
                continue    # the sessions module may not load yet
            if i >= 3:      # the first rounds warm the page cache
                samples[k].append(t)
    s = {k: stats.summary(v) if v else None for k, v in samples.items()}
    return [
        figure("start-up: sesh -e ''", "s", s["sesh"], s["lua"], "lua5.4 -e ''",
               target="<= 2x lua5.4", met=lambda f: f["sesh"]["p50"] <= 2 * f["alt"]["p50"]),
        figure("start-up: sesh -e ''", "s", s["sesh"], s["python"],
               "python3 -c 'import requests'"),
        figure("client start: sesh -e 'require \"sessions\"'", "s", s["sesh+sessions"],
               s["python"], "python3 -c 'import requests'",
               errors=[("sesh", None if s["sesh+sessions"] else "require \"sessions\" fails")]),
    ]


# ---- 2. round trip -------------------------------------------------------

def fig_roundtrip(b):
    n = b.reps(400, 100)
    clients = (("sesh", lambda pool: b.run_sesh(pool, "roundtrip", n)),
               ("http", lambda pool: b.run_sesh(pool, "roundtrip_http", n)),
               ("alt", lambda pool: b.run_alt(pool, "roundtrip", n)))
    got = {who: [] for who, _ in clients}
    err = {who: None for who, _ in clients}
    with b.pool() as pool:
        # Interleaved thirds, so a burst of noise hits every client alike.
        for _ in range(3):
            for who, run in clients:
                if not err[who]:
                    res, err[who] = side(lambda: run(pool)[0])
                    if res:
                        got[who] += res["samples"]
    s = {who: stats.summary(v) if v and not err[who] else None for who, v in got.items()}
    return [
        figure("round trip: execute 6 * 7, warm session", "s", s["sesh"], s["alt"],
               "Python requests, kept-alive",
               target="p50 <= 1 ms and <= 1/2 Python's", target_value=1e-3,
               met=lambda f: f["sesh"]["p50"] <= 1e-3 and f["ratio"] >= 2,
               errors=[("sesh", err["sesh"]), ("python", err["alt"])]),
        # The same request through sessions.http alone: what the module's face costs.
        figure("round trip: same via sessions.http only", "s", s["http"], s["alt"],
               "Python requests, kept-alive", errors=[("sesh", err["http"])]),
    ] + fig_roundtrip_unix(b, n, s["alt"])


def fig_roundtrip_unix(b, n, alt):
    """The path a script takes by default: the local pool on its unix socket
    (requests cannot speak it: the alternative is its TCP figure above)."""
    res, why = None, None
    try:
        with b.pool(unix=True) as pool:
            res, why = side(lambda: b.run_sesh(pool, "roundtrip", n)[0])
    except RuntimeError as e:
        why = str(e)
    return [figure("round trip: same over the pool's unix socket", "s",
                   res and stats.summary(res["samples"]), alt,
                   "Python requests over TCP", errors=[("sesh", why)])]


# ---- 3. allocation -------------------------------------------------------

# What the fork server holds ready, and what a fork saves: a fresh interpreter
# importing what a session's does and starting an IPython shell (inline
# matplotlib, one cell run).
FRESH_NAME = "fresh python3 with the session's imports"
FRESH_IPYTHON = ("import IPython, numpy, pandas, matplotlib, sklearn\n"
                 "from IPython.core.interactiveshell import InteractiveShell\n"
                 "class Shell(InteractiveShell):\n"
                 "    def enable_gui(self, gui=None): pass\n"
                 "shell = Shell.instance()\n"
                 "shell.enable_matplotlib('inline')\n"
                 "shell.run_cell('x = 6 * 7')\n")


def mpl_env(b):
    """One matplotlib font cache for every plain interpreter, built first, as
    any user's would be."""
    env = dict(b.env, MPLCONFIGDIR=os.path.join(b.tmp, "mpl"))
    if not os.path.isdir(env["MPLCONFIGDIR"]):
        subprocess.run([PYTHON, "-c", "import matplotlib.pyplot"], env=env, timeout=300,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return env


def fresh_python(b):
    """The start of a fresh interpreter with a session's imports (seconds),
    measured once per run and kept for every row that compares with it."""
    if b._fresh is None:
        env = mpl_env(b)
        spawn_time([PYTHON, "-c", FRESH_IPYTHON], env)        # the page cache warm
        b._fresh = stats.summary([spawn_time([PYTHON, "-c", FRESH_IPYTHON], env)
                                  for _ in range(b.reps(5, 2))])
    return b._fresh

def split_ready(answer):
    """The samples of an alloc run that found a ready sandbox, and the rest.
    The pool says which: X-Ms-Allocation-Time is 0 when no sandbox had to be
    started for the call."""
    ready, cold = [], []
    for t, h in zip(answer["samples"], answer.get("headers") or []):
        (ready if str(h.get("x-ms-allocation-time")) == "0" else cold).append(t)
    return ready, cold


def fig_alloc(b):
    n, gap, k = b.reps(5, 3), 1.0, 20
    clients = (("sesh", b.run_sesh), ("alt", b.run_alt))
    got = {who: ([], []) for who, _ in clients}
    err = {who: None for who, _ in clients}
    with b.ready_pool(3) as pool:
        time.sleep(3)           # let the pool fill its ready sandboxes
        for _ in range(2):      # interleaved halves
            for who, run in clients:
                if not err[who]:
                    res, err[who] = side(lambda: run(pool, "alloc", n, gap, timeout=300)[0])
                    if res:
                        ready, cold = split_ready(res)
                        got[who][0].extend(ready)
                        got[who][1].extend(cold)
        burst = {who: side(lambda: run(pool, "burst", k, b.reps(2, 1), 2, timeout=300)[0])
                 for who, run in clients}

    def summ(samples):
        return stats.summary(samples) if samples else None

    fresh, fresh_err = side(lambda: fresh_python(b))
    burst_sesh = summ(burst["sesh"][0] and burst["sesh"][0]["samples"])
    hits = {who: f"{len(r)} of {len(r) + len(c)}" for who, (r, c) in got.items()}
    no_ready = [(who, "no call found a ready sandbox (the pool refills too slowly "
                      "on this machine now)") for who, (r, c) in got.items() if not r and c]
    return [
        figure("allocation: first execute, ready sandbox waiting", "s",
               summ(got["sesh"][0]), summ(got["alt"][0]), "Python requests",
               target="p50 <= 10 ms", target_value=0.010,
               met=lambda f: f["sesh"]["p50"] <= 0.010,
               errors=[("sesh", err["sesh"]), ("python", err["alt"])] + no_ready,
               ready_hits=hits),
        figure(f"allocation: burst of {k} new sessions, all answered", "s",
               burst_sesh,
               summ(burst["alt"][0] and burst["alt"][0]["samples"]),
               "Python requests, threads",
               errors=[("sesh", burst["sesh"][1]), ("python", burst["alt"][1])]),
        figure(f"allocation: burst of {k} new sessions, all answered", "s", burst_sesh,
               fresh, FRESH_NAME + " (one)", target=">= 2x faster than one",
               met=lambda f: f["ratio"] >= 2,
               errors=[("sesh", burst["sesh"][1]), ("fresh python3", fresh_err)]),
    ]


def fig_alloc_cold(b):
    """The first execute when no sandbox is ready: what a new session costs
    (forked from the fork server, where the pool has one)."""
    n = b.reps(10, 3)
    with b.ready_pool(0) as pool:
        res = {who: side(lambda: run(pool, "alloc", n, 0.2, timeout=300)[0])
               for who, run in (("sesh", b.run_sesh), ("alt", b.run_alt))}
    fresh, fresh_err = side(lambda: fresh_python(b))
    cold = res["sesh"][0] and stats.summary(res["sesh"][0]["samples"])
    return [figure("allocation: first execute, no ready sandbox", "s", cold,
                   res["alt"][0] and stats.summary(res["alt"][0]["samples"]),
                   "Python requests",
                   errors=[("sesh", res["sesh"][1]), ("python", res["alt"][1])]),
            figure("allocation: first execute, no ready sandbox", "s", cold, fresh, FRESH_NAME,
                   target=">= 30x faster", met=lambda f: f["ratio"] >= 30,
                   target_value=fresh and fresh["p50"] / 30,
                   errors=[("sesh", res["sesh"][1]), ("fresh python3", fresh_err)])]


# ---- 4. throughput -------------------------------------------------------

def fig_throughput(b):
    figs = []
    per = {1: b.reps(300, 100), 4: b.reps(150, 50), 16: b.reps(40, 12)}
    reps = b.reps(4, 2)
    clients = (("sesh", b.run_sesh), ("alt", b.run_alt))
    with b.pool() as pool:
        # One set of sessions for every level and both clients: starting
        # sandboxes is allocation's figure, not this one's.
        b.run_alt(pool, "open", "bench-tp", 16, timeout=600)
        for k in (1, 4, 16):
            res = {who: side(lambda: run(pool, "throughput", "bench-tp", k, per[k], reps,
                                         timeout=300)[0])
                   for who, run in clients}

            def rate(r):
                return r[0] and stats.rate_summary(r[0]["samples"], r[0]["executions"])

            target = met = None
            if k == 4:
                target, met = ">= 1000/s", (lambda f: f["sesh"]["p50"] >= 1000)
            figs.append(figure(f"throughput: 6 * 7 over {k} session{'s' * (k > 1)}",
                               "exec/s", rate(res["sesh"]), rate(res["alt"]),
                               "Python requests, threads", higher_is_better=True,
                               target=target, met=met, target_value=target and 1000,
                               errors=[("sesh", res["sesh"][1]), ("python", res["alt"][1])]))
    return figs


# ---- 5. transfers --------------------------------------------------------

def make_file(path, size):
    """Incompressible bytes, written once per run."""
    with open(path, "wb") as f:
        left = size
        block = os.urandom(MB)
        while left > 0:
            f.write(block[:min(left, MB)])
            left -= MB
    return path


def fig_transfers(b):
    figs = []
    clients = (("sesh", b.run_sesh), ("alt", b.run_alt))
    with b.pool() as pool:
        for size_mb, reps in ((1, b.reps(20, 5)), (100, b.reps(3, 2))):
            path = make_file(os.path.join(b.tmp, f"{size_mb}MB.bin"), size_mb * MB)
            # Both clients download the same file from the same session, put
            # there by a process of its own so it costs neither of them.
            ident = f"bench-download-{size_mb}"
            b.run_alt(pool, "put", ident, path, timeout=600)
            for op in ("upload", "download"):
                res = {}
                for who, run in clients:
                    def go():
                        procs.reset_peak_rss(pool.pid)
                        if op == "upload":
                            answer, client_rss = run(pool, op, path, reps, timeout=600)
                        else:
                            answer, client_rss = run(pool, op, ident, size_mb * MB, reps,
                                                     os.path.join(b.tmp, f"out-{who}.bin"),
                                                     timeout=600)
                        return {"rate": stats.rate_summary(answer["samples"], size_mb * MB / 1e6),
                                "client_rss": client_rss,
                                "pool_rss": procs.peak_rss(pool.pid)}
                    res[who] = side(go)
                s, a = res["sesh"][0], res["alt"][0]
                errors = [("sesh", res["sesh"][1]), ("python", res["alt"][1])]
                big = size_mb == 100
                figs.append(figure(
                    f"{op} {size_mb} MB", "MB/s", s and s["rate"], a and a["rate"],
                    "Python requests", higher_is_better=True,
                    target=">= 300 MB/s" if big else None, target_value=big and 300 or None,
                    met=lambda f: f["sesh"]["p50"] >= 300, errors=errors))
                figs.append(figure(
                    f"{op} {size_mb} MB: client peak RSS", "bytes",
                    s and {"p50": s["client_rss"]}, a and {"p50": a["client_rss"]},
                    "Python requests", target="< 32 MB" if big else None,
                    target_value=big and 32 * MB or None,
                    met=lambda f: f["sesh"]["p50"] < 32 * MB, errors=errors))
                figs.append(figure(
                    f"{op} {size_mb} MB: pool peak RSS", "bytes",
                    s and {"p50": s["pool_rss"]}, a and {"p50": a["pool_rss"]},
                    "same pool, Python client", errors=errors))
            os.unlink(path)
    return figs


# ---- 6. memory -----------------------------------------------------------

# The alternative for memory: the state a session's runner holds (IPython
# with matplotlib's inline backend, one variable), in a plain python3 with no
# pool and no sandbox: the floor a pool of such sessions can reach.
IDLE_IPYTHON = ("from IPython.core.interactiveshell import InteractiveShell\n"
                "class Shell(InteractiveShell):\n"
                "    def enable_gui(self, gui=None): pass\n"
                "shell = Shell.instance()\n"
                "shell.enable_matplotlib('inline')\n"
                "shell.run_cell('x = 1')\n"
                "import sys\n"
                "print('ready', flush=True)\n"
                "sys.stdin.read()\n")


def fig_memory(b):
    k = 10
    with b.pool() as pool:
        time.sleep(1)
        before = procs.tree_memory(pool.pid)
        client = subprocess.Popen([PYTHON, b.alt_client, "idle", pool.endpoint,
                                   pool.token_file, str(k)], env=b.env, text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            line = client.stdout.readline()
            if '"ready"' not in line:
                raise RuntimeError(f"the client did not open {k} sessions: {line!r}")
            time.sleep(1)
            after = procs.tree_memory(pool.pid)
        finally:
            client.stdin.close()
            client.wait(60)
    per = {m: (after[m] - before[m]) / k for m in ("rss", "pss")}
    env = mpl_env(b)
    alt_per = plain_pythons(IDLE_IPYTHON, k, env)
    fresh_per = plain_pythons(FRESH_IPYTHON + IDLE_WAIT, k, env)
    extra = {"pool_idle": before, "pool_with_sessions": after, "sessions": k}
    third = {"target": "<= 1/3 of plain python3's", "target_value": alt_per["pss"] / 3,
             "met": lambda f: f["sesh"]["p50"] <= alt_per["pss"] / 3}
    return [
        figure(f"memory per idle session (PSS), {k} open", "bytes", {"p50": per["pss"]},
               {"p50": alt_per["pss"]}, "plain python3, IPython + inline matplotlib",
               **third, **extra),
        figure(f"memory per idle session (PSS), {k} open", "bytes", {"p50": per["pss"]},
               {"p50": fresh_per["pss"]}, FRESH_NAME, **third),
        figure(f"memory per idle session (RSS), {k} open", "bytes", {"p50": per["rss"]},
               {"p50": alt_per["rss"]}, "plain python3, IPython + inline matplotlib"),
        figure("pool with no session, 1 ready sandbox (PSS)", "bytes", {"p50": before["pss"]}, None, None),
    ]


IDLE_WAIT = "import sys\nprint('ready', flush=True)\nsys.stdin.read()\n"


def plain_pythons(code, k, env):
    """RSS and PSS per process of k plain interpreters running code, which
    says ready and then waits on stdin."""
    alts = [subprocess.Popen([PYTHON, "-c", code], env=env, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL) for _ in range(k)]
    try:
        for p in alts:
            p.stdout.readline()
        mem = {"rss": 0, "pss": 0}
        for p in alts:
            m = procs.smaps_rollup(p.pid)
            mem["rss"] += m["rss"]
            mem["pss"] += m["pss"]
    finally:
        for p in alts:
            p.stdin.close()
            p.wait(30)
    return {m: mem[m] / k for m in ("rss", "pss")}


FIGURES = [("startup", fig_startup), ("roundtrip", fig_roundtrip), ("alloc", fig_alloc),
           ("alloc_cold", fig_alloc_cold), ("throughput", fig_throughput),
           ("transfers", fig_transfers), ("memory", fig_memory)]


# ---- the machine and the report ------------------------------------------

def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    debian = ""
    if os.path.exists("/etc/debian_version"):
        with open("/etc/debian_version") as f:
            debian = "Debian " + f.read().strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 1048576, 1),
            "kernel": platform.release(), "os": debian, "scratch": scratch_dir() or tempfile.gettempdir(),
            "load_at_start": [round(x, 2) for x in os.getloadavg()]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build-bench", help="the build folder to measure")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    ap.add_argument("--only", default="", help="comma-separated: " +
                    ",".join(n for n, _ in FIGURES))
    ap.add_argument("--sesh", help="the sesh binary (default: BUILD/bin/sesh)")
    ap.add_argument("--pool", help="the sesh-pool binary (default: BUILD/bin/sesh-pool)")
    args = ap.parse_args()
    b = Bench(args.build, args.quick, args.sesh, args.pool)
    only = set(filter(None, args.only.split(",")))
    m = machine()
    print(f"sesh bench: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, "
          f"{m['os']}, Linux {m['kernel']}, load {m['load_at_start']}, "
          f"scratch files in {m['scratch']}", flush=True)
    started = time.monotonic()
    figures = []
    for name, fn in FIGURES:
        if only and name not in only:
            continue
        t0 = time.monotonic()
        print(f"  measuring {name} ...", end="", flush=True)
        try:
            figs = fn(b)
        except Exception as e:
            figs = [{"name": name, "unit": "s", "sesh": None, "alt": None, "ratio": None,
                     "note": f"n/a: {type(e).__name__}: {e}"}]
        figures += figs
        print(f" {time.monotonic() - t0:.0f} s", flush=True)
    m["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print()
    print(stats.table(figures))
    report = {"machine": m, "when": datetime.datetime.now(datetime.timezone.utc)
              .strftime("%Y-%m-%dT%H:%M:%SZ"), "seconds": round(time.monotonic() - started),
              "quick": args.quick, "figures": figures}
    json_path = os.path.join(b.out, "bench.json")
    with open(json_path, "w") as f:
        json.dump(report, f, indent=1)
    png_path = os.path.join(b.out, "bench.png")
    chart = subprocess.run([PYTHON, os.path.join(HERE, "chart.py"), json_path, png_path],
                           capture_output=True, text=True)
    print()
    print(f"figures: {os.path.relpath(json_path)}", end="")
    print(f", chart: {os.path.relpath(png_path)}" if chart.returncode == 0
          else f" (no chart: {chart.stderr.strip().splitlines()[-1:]})")
    print(f"ratio: how many times better sesh is (above 1: sesh wins); "
          f"{round(time.monotonic() - started)} s in all")
    shutil.rmtree(b.tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
