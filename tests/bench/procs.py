"""procs.py — the processes the bench starts and watches: a sesh-pool on
loopback, client runs with their peak memory, and the memory of a process
tree read from /proc.
"""

import json
import os
import re
import select
import signal
import subprocess
import tempfile
import time


class Pool:
    """A real sesh-pool on 127.0.0.1 with a port of its own choosing (or on a
    unix socket), started the way a user starts one; its address comes from its
    startup line: http://127.0.0.1:PORT or unix:PATH."""

    def __init__(self, binary, workdir, log_path, args=(), startup_timeout=30, unix=False):
        self.dir = tempfile.mkdtemp(prefix="pool.", dir=workdir)
        self.token_file = os.path.join(self.dir, "token")
        state = os.path.join(self.dir, "state")
        os.mkdir(state, 0o700)
        self.log_path = log_path
        self.log = open(self.log_path, "wb")
        where = (["--socket", os.path.join(self.dir, "pool.sock")] if unix
                 else ["--listen", "127.0.0.1:0"])
        cmd = [binary, *where, "--token-file", self.token_file, "--state-dir", state, *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        line = self._first_line(startup_timeout)
        m = re.search(r"listening on ((?:http://|unix:)\S+?)[\s,]", line + " ")
        if not m:
            self.stop()
            raise RuntimeError(f"sesh-pool did not say where it listens: {line!r} "
                               f"(log: {self.tail()})")
        self.endpoint = m.group(1)
        self.pid = self.proc.pid
        with open(self.token_file) as f:
            self.token = f.read().strip()

    def _first_line(self, timeout):
        fd = self.proc.stdout.fileno()
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.stop()
                raise RuntimeError(f"sesh-pool printed no startup line in {timeout} s "
                                   f"(log: {self.tail()})")
            chunk = os.read(fd, 4096)
            if not chunk:
                self.stop()
                raise RuntimeError(f"sesh-pool exited at start (log: {self.tail()})")
            buf += chunk
        return buf.split(b"\n", 1)[0].decode(errors="replace")

    def settle(self, timeout=180):
        """Waits until the pool's fork server is ready, or off (its log says
        which): until then a new session waits for it to load."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.log.flush()
            with open(self.log_path, "rb") as f:
                text = f.read()
            if b"fork server: ready" in text or b"fork server: off" in text:
                return
            time.sleep(0.05)
        raise RuntimeError(f"the pool's fork server was not ready in {timeout} s "
                           f"(log: {self.tail()})")

    def tail(self, n=400):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read()[-n:].decode(errors="replace").strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def run_client(cmd, env, timeout, label, stdin=None):
    """Runs one client to its end. Returns (its JSON answer, its peak RSS in
    bytes). Output goes through a file, so a chatty client cannot block on a
    full pipe while we wait for it with wait4 (which is what gives the child's
    own peak RSS)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err,
                                stdin=stdin or subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                proc.returncode = -9
                raise RuntimeError(f"{label}: no answer in {timeout} s")
            time.sleep(0.005)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, errtext = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{label}: exit {proc.returncode}: {error_line(errtext)}")
    lines = [l for l in text.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError(f"{label}: no JSON answer on stdout: {text[-300:]!r} {errtext[-300:]!r}")
    return json.loads(lines[-1]), ru.ru_maxrss * 1024


def error_line(stderr):
    """The line of a failed client's stderr that says what went wrong: Lua
    puts it first (then a stack traceback), Python last (after one)."""
    lines = [l.strip() for l in stderr.strip().splitlines() if l.strip()]
    if not lines:
        return "(no message)"
    if lines[0].startswith("Traceback"):
        return lines[-1]
    return lines[0]


def children(pid):
    """Every descendant of pid (sandboxes, their interpreters), from /proc."""
    parent = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: split after the last ')'
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        parent.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in parent.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def smaps_rollup(pid):
    """{'rss': bytes, 'pss': bytes} of one process (0 if it is gone)."""
    mem = {"rss": 0, "pss": 0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("Rss", "Pss"):
                    mem[key.lower()] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return mem


def tree_memory(pid):
    """RSS and PSS summed over pid and its descendants, and their count.
    RSS counts shared pages once per process (an upper bound); PSS splits
    them between the sharers, so PSS sums to what the tree really costs."""
    total = {"rss": 0, "pss": 0, "processes": 0}
    for p in [pid] + children(pid):
        m = smaps_rollup(p)
        if m["rss"]:
            total["rss"] += m["rss"]
            total["pss"] += m["pss"]
            total["processes"] += 1
    return total


def reset_peak_rss(pid):
    """Resets VmHWM (Linux 4.0+, writing 5 to clear_refs); False if we may not."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss(pid):
    """VmHWM of one process, bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0
