"""alt_client.py — the alternative the bench measures sesh against: a Python
client of the pool API written the way the Azure clients are (LangChain's
SessionsPythonREPLTool and its peers), with `requests`, plus what a careful
user adds: one kept-alive requests.Session per session identifier, threads
for parallel work, streamed downloads.

    /usr/bin/python3 alt_client.py OP ENDPOINT TOKEN_FILE [ARGS...]

It speaks the first API generation (code/execute, files/upload,
files/content/NAME), as every popular client does. Each OP prints one JSON
object on stdout, {"samples": [seconds...], ...}; timing covers the client's
whole work (request, answer, JSON decoding), nothing of the set-up.
"""

import json
import os
import sys
import threading
import time
import uuid

import requests

API = "2024-02-02-preview"
API_DELETE = "2025-02-02-preview"
USER_AGENT = "sesh-bench-alternative/1.0 (Language=Python)"


class Session:
    """One session identifier over one kept-alive HTTP connection."""

    def __init__(self, endpoint, token, ident=None):
        self.endpoint = endpoint.rstrip("/") + "/"
        self.ident = ident or "bench-" + uuid.uuid4().hex
        self.http = requests.Session()
        self.http.headers.update({"Authorization": "Bearer " + token,
                                  "User-Agent": USER_AGENT})

    def url(self, path, api=API):
        return self.endpoint + path, {"identifier": self.ident, "api-version": api}

    def execute(self, code):
        url, params = self.url("code/execute")
        body = {"properties": {"codeInputType": "inline",
                               "executionType": "synchronous", "code": code}}
        r = self.http.post(url, params=params, json=body, timeout=240)
        r.raise_for_status()
        props = r.json()["properties"]
        if props.get("status") != "Success":
            raise RuntimeError(f"execute {code!r}: {props.get('status')}: {props.get('stderr')}")
        return props, r.headers

    def upload(self, path, name):
        url, params = self.url("files/upload")
        with open(path, "rb") as f:
            r = self.http.post(url, params=params, timeout=240,
                               files={"file": (name, f, "application/octet-stream")})
        r.raise_for_status()
        return r.json()

    def download(self, name, path):
        url, params = self.url("files/content/" + name)
        with self.http.get(url, params=params, stream=True, timeout=240) as r:
            r.raise_for_status()
            with open(path, "wb") as f:
                for chunk in r.iter_content(chunk_size=1 << 20):
                    f.write(chunk)

    def files(self):
        url, params = self.url("files")
        r = self.http.get(url, params=params, timeout=30)
        r.raise_for_status()
        return r.json()["value"]

    def delete(self):
        """Frees the session on the pool; a pool without DELETE is fine."""
        url, params = self.url("session", API_DELETE)
        try:
            self.http.delete(url, params=params, timeout=30)
        except requests.RequestException:
            pass
        self.http.close()


def timed(fn, *args):
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def check_42(props):
    if props.get("result") != 42:
        raise RuntimeError(f"6 * 7 answered {props.get('result')!r}")


def op_roundtrip(endpoint, token, n, warm=10):
    s = Session(endpoint, token)
    for _ in range(int(warm)):
        check_42(s.execute("6 * 7")[0])
    samples = [timed(lambda: check_42(s.execute("6 * 7")[0])) for _ in range(int(n))]
    s.delete()
    return {"samples": samples}


def op_alloc(endpoint, token, n, gap):
    """First execute on a new identifier, n times, gap seconds apart so the
    pool can refill its ready sandboxes."""
    samples, headers = [], []
    for _ in range(int(n)):
        s = Session(endpoint, token)
        t0 = time.perf_counter()
        props, h = s.execute("6 * 7")
        samples.append(time.perf_counter() - t0)
        check_42(props)
        headers.append({k.lower(): v for k, v in h.items() if k.lower().startswith("x-ms-")})
        s.delete()
        time.sleep(float(gap))
    return {"samples": samples, "headers": headers}


def run_parallel(sessions, work):
    """Runs work(session) on one thread per session, all released at once;
    returns the seconds until the last one finished."""
    go = threading.Event()
    errors = []

    def body(s):
        go.wait()
        try:
            work(s)
        except Exception as e:      # reported, not hidden: the figure is void
            errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=body, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    time.sleep(0.05)                # every thread waits on the event
    t0 = time.perf_counter()
    go.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(errors[0])
    return elapsed


def op_burst(endpoint, token, k, reps, gap):
    """k new identifiers at once, each with a first execute; time until all
    answered."""
    samples = []
    for _ in range(int(reps)):
        sessions = [Session(endpoint, token) for _ in range(int(k))]
        samples.append(run_parallel(sessions, lambda s: check_42(s.execute("6 * 7")[0])))
        for s in sessions:
            s.delete()
        time.sleep(float(gap))
    return {"samples": samples}


def op_throughput(endpoint, token, prefix, k, per_session, reps):
    """Sessions prefix-1..prefix-k (opened by the driver beforehand, shared
    with the sesh client) in parallel, each running per_session trivial cells."""
    sessions = [Session(endpoint, token, f"{prefix}-{i}") for i in range(1, int(k) + 1)]
    for s in sessions:              # connect, and check the session answers
        check_42(s.execute("6 * 7")[0])

    def work(s):
        for _ in range(int(per_session)):
            s.execute("6 * 7")

    samples = [run_parallel(sessions, work) for _ in range(int(reps))]
    return {"samples": samples, "executions": int(k) * int(per_session)}


def op_open(endpoint, token, prefix, k):
    """Opens sessions prefix-1..prefix-k at once (for op_throughput)."""
    sessions = [Session(endpoint, token, f"{prefix}-{i}") for i in range(1, int(k) + 1)]
    run_parallel(sessions, lambda s: check_42(s.execute("6 * 7")[0]))
    return {"samples": []}


def op_upload(endpoint, token, path, reps):
    s = Session(endpoint, token)
    s.execute("6 * 7")
    size = os.path.getsize(path)
    samples = []
    for _ in range(int(reps)):
        samples.append(timed(s.upload, path, "bench.bin"))
    sizes = [f["properties"]["size"] for f in s.files()
             if f["properties"]["filename"] == "bench.bin"]
    if sizes != [size]:
        raise RuntimeError(f"uploaded {size} bytes, the pool lists {sizes}")
    s.delete()
    return {"samples": samples, "bytes": size}


def op_put(endpoint, token, ident, path):
    """Set-up for op_download, in a process of its own so that the client
    measured there pays nothing for it: opens session ident, uploads path."""
    s = Session(endpoint, token, ident)
    s.execute("6 * 7")
    s.upload(path, "bench.bin")
    return {"samples": []}


def op_download(endpoint, token, ident, size, reps, out):
    """Session ident holds bench.bin, put there by op_put."""
    s = Session(endpoint, token, ident)
    samples = []
    for _ in range(int(reps)):
        samples.append(timed(s.download, "bench.bin", out))
        if os.path.getsize(out) != int(size):
            raise RuntimeError(f"downloaded {os.path.getsize(out)} of {size} bytes")
    os.unlink(out)
    return {"samples": samples, "bytes": int(size)}


def op_idle(endpoint, token, k):
    """Opens k sessions, each with a variable set and matplotlib loaded (the
    state the driver's alternative holds: a session started for a waiting
    client loads it only when asked), says so on stdout, and keeps them until
    stdin closes (the driver measures the pool meanwhile)."""
    sessions = [Session(endpoint, token) for _ in range(int(k))]
    run_parallel(sessions, lambda s: s.execute("x = 1\nimport matplotlib.pyplot"))
    print(json.dumps({"ready": int(k)}), flush=True)
    sys.stdin.read()
    for s in sessions:
        s.delete()
    return {"samples": []}


OPS = {"roundtrip": op_roundtrip, "alloc": op_alloc, "burst": op_burst,
       "open": op_open, "throughput": op_throughput, "upload": op_upload, "put": op_put, "download": op_download,
       "idle": op_idle}


def main(argv):
    if len(argv) < 4 or argv[1] not in OPS:
        sys.exit(f"usage: {argv[0]} {'|'.join(OPS)} ENDPOINT TOKEN_FILE [ARGS...]")
    with open(argv[3]) as f:
        token = f.read().strip()
    out = OPS[argv[1]](argv[2], token, *argv[4:])
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv)
