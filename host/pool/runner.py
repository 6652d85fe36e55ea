"""sesh runner: one notebook-like Python interpreter inside a sesh-pool sandbox,
and the session's shell beside it.

sesh-pool compiles this file into its binary and hands it to the sandbox on a
descriptor, so no file of the pool is ever visible inside. It runs the user's
cells through IPython's InteractiveShell, so results, reprs, tracebacks and
figures behave as in a notebook; shell commands run in a bash it keeps beside
(class Shell), which is all a sandbox of a Shell pool runs.

Protocol, on descriptor 3 (a socket to the pool): each message is a frame of a
4-byte big-endian length and a UTF-8 JSON object.

  pool -> runner, first:  {"op": "start", "plots": "eager"|"deferred",
                           "kind": "python"|"shell"}
      kind shell: a sandbox of a Shell pool, which runs shell commands only
      and loads no IPython (absent: python);
      eager: matplotlib and its inline backend are loaded before "ready", so
      the first plot is as quick as any (a warm sandbox nobody waits for yet);
      deferred: the first code that imports matplotlib gets the inline backend
      (as Jupyter's MPLBACKEND gives it), and the runner is ready in half the
      time (somebody waits for this sandbox).
  runner -> pool, once started:  {"op": "ready"}
  {"op": "execute", "code": "...", "max_output": 4096, "max_result": 4194304,
   "jupyter": false, "seq": 7}
      -> {"status": "Success"|"Failure", "stdout": "...", "stderr": "...",
          "result": <value>, "ms": 8, "stdout_truncated": false,
          "stderr_truncated": false, "seq": 7}
      and, when the result's text (an image's base64) would take more than
      max_result bytes of JSON, result null and
      "result_too_large": {"kind": "image"|"value", "bytes": N}
  {"op": "shell", "command": "ls -a" | "args": ["ls", "-a"], "stdin": "..." (optional),
   "max_output": 4096, "seq": 9}
      -> {"exit_code": 0 | null, "stdout": "...", "stderr": "...", "ms": 3,
          "stdout_truncated": false, "stderr_truncated": false,
          "new_shell": false, "shell_ended": false, "seq": 9}
      runs in the session's persistent bash (class Shell, started at the
      first command); exit_code null: the command did not end by itself
      (its shell was killed at an interrupt) or could not start
  {"op": "metadata", "seq": 8}
      -> {"python": "3.11.2", "ipython": "8.5.0", "bash": "5.2.15",
          "packages": [{"name": "numpy", "version": "1.24.2"}, ...], "seq": 8}
      (no "ipython" in a shell sandbox)

Every reply echoes its request's seq. `result` follows section 6 of
pool-api.md. The pool interrupts a cell with SIGINT (KeyboardInterrupt in the
user's code), and a shell command with SIGINT too (every process the command
started is killed), and treats any reply it cannot validate, or any frame out
of turn, as the loss of the interpreter.
"""

import base64
import io
import json
import math
import numbers
import os
import re
import select
import signal
import struct
import subprocess
import sys
import time

CHANNEL = 3
MAX_REQUEST = 64 << 20          # the pool's own cap on code is far below this
MAX_STREAM = 16 << 20           # a cell never keeps more than this of a stream
MAX_RESULT = 4 << 20            # bytes of a result as JSON, unless the pool says
JSON_CHAR_MAX = 6               # bytes a character may take in a JSON string
REAP_TIMEOUT = 1.0              # seconds to wait for the killed processes to be gone
PR_SET_CHILD_SUBREAPER = 36
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
PRIMITIVES = (bool, int, float, str, type(None))
RESULT_TYPES = ("text/plain", "image/png")     # what a cell's value may become


# -- framing -----------------------------------------------------------------

def read_exact(n):
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(CHANNEL, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def read_frame():
    header = read_exact(4)
    if header is None:
        return None
    (length,) = struct.unpack(">I", header)
    if length > MAX_REQUEST:
        raise ValueError("request of %d bytes is over the runner's limit" % length)
    body = read_exact(length)
    if body is None:
        return None
    return json.loads(body)


def write_frame(obj):
    data = json.dumps(obj, ensure_ascii=False, allow_nan=False).encode("utf-8")
    data = struct.pack(">I", len(data)) + data
    view = memoryview(data)
    while view:
        n = os.write(CHANNEL, view)
        view = view[n:]


def clean(text):
    """Text that encodes as UTF-8: lone surrogates become U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


# -- capture -----------------------------------------------------------------

class CappedStream(io.TextIOBase):
    """A text stream that keeps the first `limit` characters of what is
    written to it and remembers whether more came."""

    def __init__(self, limit, name):
        super().__init__()
        self.limit = max(0, min(limit, MAX_STREAM))
        self.parts = []
        self.size = 0
        self.truncated = False
        self.name = name

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("write() argument must be str, not %s" % type(s).__name__)
        room = self.limit - self.size
        if len(s) > room:
            self.truncated = True
            s_kept = s[:room] if room > 0 else ""
        else:
            s_kept = s
        if s_kept:
            self.parts.append(s_kept)
            self.size += len(s_kept)
        return len(s)

    def writable(self):
        return True

    def isatty(self):
        return False

    @property
    def encoding(self):
        return "utf-8"

    def flush(self):
        pass

    def value(self):
        return clean("".join(self.parts))


# -- the shell -----------------------------------------------------------------

# The backend that wires figures to the cell's display once it is loaded.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


class InlineBackendOnImport:
    """Makes the inline backend matplotlib's own when the user's code first
    imports it (a deferred start), as Jupyter's MPLBACKEND does, but only in
    this process: the sandbox's MPLBACKEND=Agg stays what child processes see."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "matplotlib":
            return None
        sys.meta_path.remove(self)          # once, and not for the lookup below
        import importlib.util
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_with_inline_backend(module):
            saved = os.environ.get("MPLBACKEND")
            os.environ["MPLBACKEND"] = INLINE_BACKEND     # read by matplotlib's import
            try:
                exec_module(module)
            finally:
                if saved is None:
                    os.environ.pop("MPLBACKEND", None)
                else:
                    os.environ["MPLBACKEND"] = saved

        spec.loader.exec_module = exec_with_inline_backend
        return spec


class ExitCell(BaseException):
    """exit, exit() or quit in a cell: the cell ends there, cleanly.

    A notebook's kernel would restart and lose every variable; here the
    session, its state and its files go on, as a script's exit() would end
    the script but not what it leaves behind. A BaseException, like
    SystemExit, so that `except Exception` in the user's code lets it by."""


class Runner:
    def __init__(self, plots="eager"):
        from traitlets.config import Config
        from IPython.core.displayhook import DisplayHook
        from IPython.core.displaypub import DisplayPublisher
        from IPython.core.interactiveshell import InteractiveShell

        runner = self

        class Hook(DisplayHook):
            """The value of the cell's last expression, kept, not printed."""

            def write_output_prompt(self):
                pass

            def compute_format_data(self, result):
                # A plain number, string or flag is its repr, as IPython's
                # pretty printer would write it, without its machinery: that
                # is most of a trivial cell's time.
                if type(result) in PRIMITIVES:
                    return {"text/plain": repr(result)}, {}
                # Only the types the reply can carry: the other ten
                # formatters cost half of a trivial cell.
                return self.shell.display_formatter.format(result, include=RESULT_TYPES)

            def write_format_data(self, format_dict, md_dict=None):
                runner.result_repr = format_dict.get("text/plain")
                image = format_dict.get("image/png")
                if image is not None:
                    runner.images.append(image)

            def finish_displayhook(self):
                pass

            def quiet(self):
                # Only a ';' can silence a cell; tokenizing to find it costs a
                # tenth of a trivial cell.
                hist = self.shell.history_manager.input_hist_parsed
                if hist and ";" not in hist[-1]:
                    return False
                return super().quiet()

        class Publisher(DisplayPublisher):
            """display(...) and the inline backend's figures."""

            def publish(self, data, metadata=None, source=None, *, transient=None,
                        update=False, **kwargs):
                if "image/png" in data:
                    runner.images.append(data["image/png"])
                elif "text/plain" in data:
                    print(data["text/plain"])

            def clear_output(self, wait=False):
                pass

        class Shell(InteractiveShell):
            def enable_gui(self, gui=None):
                pass            # no event loop here: figures go out as images

            def transform_cell(self, raw_cell):
                # IPython's transforms (magics, !shell, help, prompts,
                # automagic) cost a third of a trivial cell and leave plain
                # Python as it is: plain Python skips them.
                if runner.plain.matches(raw_cell):
                    return raw_cell if raw_cell.endswith("\n") else raw_cell + "\n"
                return super().transform_cell(raw_cell)

            def ask_exit(self):
                raise ExitCell()        # IPython's exit and quit call this

            def should_run_async(self, raw_cell, *, transformed_cell=None,
                                 preprocessing_exc_tuple=None):
                # Top-level await needs one of these words; without them the
                # cell need not be compiled once more to find out.
                if transformed_cell is not None and "await" not in transformed_cell \
                        and "async" not in transformed_cell:
                    return False
                return super().should_run_async(
                    raw_cell, transformed_cell=transformed_cell,
                    preprocessing_exc_tuple=preprocessing_exc_tuple)

        config = Config()
        config.HistoryManager.enabled = False
        config.InteractiveShell.colors = "NoColor"
        config.InteractiveShell.xmode = "Context"
        self.shell = Shell.instance(config=config, displayhook_class=Hook,
                                    display_pub_class=Publisher)
        shell = self.shell

        def show_traceback(etype, evalue, stb):
            print(shell.InteractiveTB.stb2text(stb), file=sys.stderr)

        shell._showtraceback = show_traceback
        shell.set_custom_exc((ExitCell,), lambda *args, **kwargs: None)   # no traceback
        self.plain = PlainPython(shell)
        self.in_cell = False
        self.processes_before = set()
        self.census = ProcessCensus()
        self.swept = False
        self.images = []
        self.result_repr = None
        if plots == "eager":
            try:
                shell.enable_matplotlib("inline")
            except Exception as e:      # still a useful interpreter without plots
                print("sesh runner: matplotlib unavailable: %s" % e, file=sys.stderr)
        elif "matplotlib" not in sys.modules:
            sys.meta_path.insert(0, InlineBackendOnImport())

    def warm_up(self):
        """Runs a throwaway cell before the runner says it is ready.

        IPython starts lazily: its first cell compiles its machinery, builds
        the display formatters and the inline backend's hooks, some 20 ms.
        Paid here, in a sandbox nobody waits for yet, the user's first cell
        costs what any other does. The cell leaves no trace: no history,
        and the names its value set in the namespace are put back."""
        ns = self.shell.user_ns
        before = dict(ns)
        # The display hook updates _, __, ___ only while they are its own.
        hook = self.shell.displayhook
        unders = {u: getattr(hook, u, None) for u in ("_", "__", "___")}
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = CappedStream(0, "<warm-up>")
        try:
            self.shell.run_cell("0", store_history=False)
        finally:
            sys.stdout, sys.stderr = saved
        for name in [name for name in ns if name not in before]:
            del ns[name]
        ns.update(before)
        for u, v in unders.items():
            setattr(hook, u, v)
        out = ns.get("Out")
        if isinstance(out, dict):
            out.clear()
        self.result_repr = None
        self.images = []

    def on_unraisable(self, args):
        # Python runs signal handlers wherever the interpreter happens to be,
        # also in places whose exceptions it swallows (an at-fork hook such as
        # logging's, a finalizer). An interrupt lost there is sent again, to
        # be raised at the next line of the user's code.
        if self.in_cell and args.exc_type is not None and \
                issubclass(args.exc_type, KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            return
        sys.__unraisablehook__(args)

    def on_sigint(self, signum, frame):
        # Outside a cell an interrupt would hit the runner itself: ignore it.
        if not self.in_cell:
            return
        if not self.swept:
            self.swept = True
            self.sweep()
        raise KeyboardInterrupt

    def sweep(self):
        signal.signal(signal.SIGINT, signal.SIG_IGN)    # not while sweeping
        try:
            stop_new_processes(self.processes_before)
        finally:
            signal.signal(signal.SIGINT, self.on_sigint)

    def execute(self, request):
        code = request.get("code")
        if not isinstance(code, str):
            raise ValueError("execute: 'code' must be a string")
        limit = request.get("max_output", 4096)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise ValueError("execute: 'max_output' must be a non-negative integer")
        max_result = request.get("max_result", MAX_RESULT)
        if not isinstance(max_result, int) or isinstance(max_result, bool) or max_result < 0:
            raise ValueError("execute: 'max_result' must be a non-negative integer")
        jupyter = bool(request.get("jupyter", False))

        out, err = CappedStream(limit, "<stdout>"), CappedStream(limit, "<stderr>")
        self.images = []
        self.result_repr = None
        self.processes_before = self.census.before_cell()
        self.swept = False
        saved = sys.stdout, sys.stderr
        signal.signal(signal.SIGINT, self.on_sigint)
        success = False
        value = None
        start = time.perf_counter()
        sys.stdout, sys.stderr = out, err
        try:
            self.in_cell = True
            res = self.shell.run_cell(code, store_history=True)
            self.in_cell = False
            success = res.success or isinstance(res.error_in_exec, ExitCell)
            value = res.result
        except KeyboardInterrupt:   # one that came between the shell's own lines
            self.in_cell = False
            err.write("KeyboardInterrupt\n")
        except BaseException as e:  # the shell itself failed
            self.in_cell = False
            err.write("sesh runner: %s: %s\n" % (type(e).__name__, e))
        finally:
            self.in_cell = False
            sys.stdout, sys.stderr = saved
        if self.swept:
            # An interrupted cell answers only once every process it started
            # is gone, those born since the first sweep too.
            self.sweep()
        ms = int(round((time.perf_counter() - start) * 1000))

        if not success:
            result = None
        elif self.images:
            result = image_result(self.images[-1])
        else:
            result = self.convert(value, jupyter)
        self.images = []
        too_large = result_over_cap(result, max_result)
        if too_large:
            result, success = None, False
        reply = {
            "status": "Success" if success else "Failure",
            "stdout": out.value(),
            "stderr": err.value(),
            "result": result,
            "ms": ms,
            "stdout_truncated": out.truncated,
            "stderr_truncated": err.truncated,
        }
        if too_large:
            reply["result_too_large"] = too_large
        return reply

    def convert(self, value, jupyter):
        """The cell's value as pool-api.md section 6 wants it."""
        if value is None:
            return ""
        if jupyter:
            return clean(self.text_repr(value))
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            return clean(value)
        if isinstance(value, numbers.Integral) and type(value).__module__ in ("builtins", "numpy"):
            n = int(value)
            # The pool's JSON holds 64-bit integers: a bigger one is its text.
            return n if INT64_MIN <= n <= INT64_MAX else clean(self.text_repr(value))
        if isinstance(value, float) or (isinstance(value, numbers.Real)
                                        and type(value).__module__ == "numpy"):
            f = float(value)
            return f if math.isfinite(f) else None
        return clean(self.text_repr(value))

    def text_repr(self, value):
        if self.result_repr is not None:
            return self.result_repr
        try:
            return repr(value)
        except Exception as e:
            return "<repr failed: %s: %s>" % (type(e).__name__, e)


class PlainPython:
    """Tells a cell that IPython's input transforms would leave as it is.

    It answers yes only when sure: no character any IPython syntax needs
    (% ! ? and an Emacs mode line), no prompt to strip, no indented or empty
    start, no line opening with an autocall escape, and, for a single line,
    a first word that is no magic (automagic) and no object IPython calls by
    itself (a macro, exit). Anything else goes through IPython's transforms,
    as do all cells once the user has changed those transforms."""

    SYNTAX = re.compile(r"[%!?]|-\*-")
    PROMPTS = (">>>", "...", "In [")
    ESCAPES = re.compile(r"^[ \t]*[,;/]", re.MULTILINE)
    FIRST_WORD = re.compile(r"[A-Za-z_]\w*")

    def __init__(self, shell):
        from IPython.core.autocall import IPyAutocall
        from IPython.core.macro import Macro
        self.shell = shell
        self.special = (IPyAutocall, Macro)
        self.stock = self.transforms()

    def transforms(self):
        shell = self.shell
        manager = shell.input_transformer_manager
        return (tuple(manager.cleanup_transforms), tuple(manager.line_transforms),
                tuple(manager.token_transformers), tuple(shell.input_transformers_post),
                tuple(shell.prefilter_manager.transformers))

    def matches(self, cell):
        if not cell or cell[0].isspace() or cell.startswith(self.PROMPTS):
            return False
        if self.SYNTAX.search(cell) or self.ESCAPES.search(cell):
            return False
        if self.transforms() != self.stock:
            return False
        if "\n" not in cell.rstrip("\n"):
            if self.shell.autocall:
                return False
            word = self.FIRST_WORD.match(cell)
            if word:
                name = word.group()
                if self.shell.find_line_magic(name) is not None or \
                        isinstance(self.shell.user_ns.get(name), self.special):
                    return False
        return True


def result_over_cap(result, limit):
    """None when the result's text (an image's base64) takes at most `limit`
    bytes as JSON, else what the pool is told: {"kind", "bytes"}. A huge
    value is encoded once more to be measured; small ones never are."""
    if isinstance(result, dict):
        size = len(result["base64_data"])
    elif isinstance(result, str) and len(result) * JSON_CHAR_MAX > limit:
        try:
            size = len(json.dumps(result, ensure_ascii=False).encode("utf-8")) - 2
        except MemoryError:
            size = len(result)
    else:
        return None
    if size <= limit:
        return None
    return {"kind": "image" if isinstance(result, dict) else "value", "bytes": size}


def image_result(data):
    if isinstance(data, (bytes, bytearray)):
        data = base64.b64encode(data).decode("ascii")
    else:
        # IPython's display data wraps base64 at 76 columns; clients want it whole.
        data = "".join(data.split())
    return {"type": "image", "format": "png", "base64_data": data}


def metadata(kind):
    import platform
    from importlib import metadata as md

    packages = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() not in packages:
            packages[name.lower()] = {"name": name, "version": dist.version}
    reply = {
        "python": platform.python_version(),
        "bash": bash_version(),
        "packages": sorted(packages.values(), key=lambda p: p["name"].lower()),
    }
    if kind != "shell":
        import IPython
        reply["ipython"] = IPython.__version__
    return reply


def in_forked_child():
    # A process forked by the user's code must never speak for the runner:
    # it loses the channel, and if it ever comes back to the runner's loop
    # it leaves quietly.
    global CHANNEL_OWNER
    CHANNEL_OWNER = False
    try:
        os.close(CHANNEL)
    except OSError:
        pass


CHANNEL_OWNER = True


def list_processes():
    """The pids of the sandbox (its own pid namespace, so a handful)."""
    return {int(p) for p in os.listdir("/proc") if p.isdigit()}


class ProcessCensus:
    """The sandbox's processes before a cell, for the sweep after an interrupt.

    Listing /proc costs more than a trivial cell, so the last listing is
    kept with the namespace's last allocated pid: while that has not moved,
    no process was born since, and the listing is still complete; of its
    pids only those still alive are kept (a dead one's pid, reused by the
    next cell's child, must count as new)."""

    def __init__(self):
        try:
            self.fd = os.open("/proc/sys/kernel/ns_last_pid", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self.fd = -1
        self.last = None
        self.pids = set()

    def last_pid(self):
        if self.fd < 0:
            return None
        try:
            return int(os.pread(self.fd, 32, 0))
        except (OSError, ValueError):
            return None

    def before_cell(self):
        last = self.last_pid()
        if last is None or last != self.last:
            self.pids = list_processes()    # after reading last: nothing missed
            self.last = last
        else:
            me = os.getpid()
            self.pids = {p for p in self.pids if p in (1, me) or alive(p)}
        return self.pids


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except OSError:
        return True


def stop_new_processes(before):
    """On an interrupt: end the processes the interrupted cell started, and
    return once they are gone.

    A fork bomb would otherwise keep every CPU busy and starve the very
    interpreter that must answer. kill(-1) freezes every other process of
    the namespace at once (never its init, never the host); the new ones are
    killed and reaped, the older ones (a server from an earlier cell) go on.
    While it sweeps, the runner is a subreaper: the orphans of the killed
    processes become its children, not those of the namespace's init (which
    reaps when it gets the CPU), so it reaps them itself."""
    me = os.getpid()
    killed = []
    adopting = set_subreaper(True)
    try:
        # A process caught in the middle of a fork may still bring a child
        # into the world after the freeze: freeze and sweep until nothing
        # new is left.
        for _ in range(50):
            try:
                os.kill(-1, signal.SIGSTOP)
            except OSError:
                return
            new = list_processes() - before - {1, me} - set(killed)
            if not new:
                break
            for pid in new:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except OSError:
                    pass
        try:
            os.kill(-1, signal.SIGCONT)
        except OSError:
            pass
        reap(killed, me)
    finally:
        if adopting:
            set_subreaper(False)


_libc = None


def set_subreaper(on):
    """prctl(PR_SET_CHILD_SUBREAPER); False where it cannot be set."""
    global _libc
    try:
        if _libc is None:
            import ctypes
            _libc = ctypes.CDLL(None, use_errno=True)
        return _libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0
    except Exception:
        return False


def parent_of(pid):
    """The parent pid of a process, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read()
        return int(stat[stat.rindex(b")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def reap(killed, me):
    """Returns once every killed process is gone: reaped by the runner (its
    children, and the orphans it adopted) or by the namespace's init (orphans
    from before the sweep). A killed process whose parent is an older process
    is that parent's to reap, as any child of it is."""
    left = set(killed)
    deadline = time.monotonic() + REAP_TIMEOUT
    pause = 0.0002
    while left:
        for pid in list(left):
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    left.discard(pid)
                continue                # ours, and not dead yet
            except ChildProcessError:
                pass
            parent = parent_of(pid)
            if parent is None or parent not in left and parent not in (1, me):
                left.discard(pid)       # gone, or an older process's zombie
        if not left or time.monotonic() > deadline:
            return
        time.sleep(pause)
        pause = min(pause * 2, 0.01)


# -- shell commands --------------------------------------------------------------
#
# The session's bash, kept as a terminal keeps one: cd, variables and functions
# stay from one command to the next. It runs with job control off and reads no
# rc file. Its script is a pipe from the runner (descriptor 0); its stdout and
# stderr are two pipes the runner reads while a command runs; it reports each
# command's exit status on a third (descriptor STATUS_FD, closed for the command
# itself, so nothing the command starts can hold or write it). A command's text
# and its stdin are memory files the runner names by their /proc path, so the
# line the script gets is as short for a megabyte of command as for `ls`. The
# command runs at the shell's top level, through eval: declare, cd, set and
# exit behave as typed at a prompt, and `exit` (or `set -e` and a failure) ends
# the shell, whose successor the next command then starts.

BASH = "/bin/bash"
STATUS_FD = 250
SHELL_GRACE = 0.3       # seconds the shell has to report once its command was killed
DRAIN_MAX = 1 << 20     # bytes of each stream read after the exit status came
STATUS_MAX = 4096       # bytes of unread status lines kept

SHELL_INIT = (
    # gives a command the exit status of the command before it, as $?
    '__sesh_status() { return "$1"; }\n'
    "readonly -f __sesh_status\n"
    "__sesh_rc=0\n"
    "cd /mnt/data 2>/dev/null || :\n"
)
# One command. It first says it has begun ("<seq> +"): a shell that dies
# before has not run it, and the next shell gets it. `|| :` and `&& :` keep a
# `set -e` the user left on from ending the shell in this line's own steps; in
# the command itself it does end it.
SHELL_LINE = ("\\builtin printf '%d +\\n' >&" + str(STATUS_FD) + " || :; "
              "IFS= \\builtin read -r -d '' __sesh_cmd <'%s' || :; "
              '__sesh_status "$__sesh_rc" && :; '
              "\\builtin eval \"$__sesh_cmd\" <'%s' " + str(STATUS_FD) + ">&-; "
              "__sesh_rc=$?; __sesh_cmd=; "
              "\\builtin printf '%d %%s\\n' \"$__sesh_rc\" >&" + str(STATUS_FD) + "\n")
STATUS_LINE = re.compile(rb"(\d+) (\d+|\+)\n")


def shell_quote(word):
    return "'" + word.replace("'", "'\\''") + "'"


def write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def memory_file(name, data):
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        write_all(fd, data)
    except BaseException:
        os.close(fd)
        raise
    return fd


class ByteCapture:
    """The first `limit` characters of a stream that arrives as bytes (UTF-8;
    other bytes become U+FFFD), and whether more came. At most 4 bytes a
    character are kept, which always holds the first `limit` characters."""

    def __init__(self, limit):
        self.limit = max(0, min(limit, MAX_STREAM))
        self.room = 4 * self.limit
        self.parts = []
        self.dropped = False

    def take(self, data):
        if len(data) > self.room:
            self.dropped = True
            data = data[:self.room]
        if data:
            self.parts.append(data)
            self.room -= len(data)

    def value(self):
        text = b"".join(self.parts).decode("utf-8", "replace")
        if len(text) > self.limit:
            return text[:self.limit], True
        return text, self.dropped


def shell_request(request):
    """The command line, stdin (bytes or None) and output cap of a shell request."""
    command, args = request.get("command"), request.get("args")
    if (command is None) == (args is None):
        raise ValueError("shell: give exactly one of 'command' and 'args'")
    if args is not None:
        if not isinstance(args, list) or not args or \
                not all(isinstance(a, str) for a in args):
            raise ValueError("shell: 'args' must be a non-empty list of strings")
        # A program and its arguments, no shell syntax: each word quoted,
        # run by exec in a subshell (no builtin, function or alias).
        command = "(\\builtin exec -- " + " ".join(shell_quote(a) for a in args) + ")"
    elif not isinstance(command, str):
        raise ValueError("shell: 'command' must be a string")
    stdin = request.get("stdin")
    if stdin is not None and not isinstance(stdin, str):
        raise ValueError("shell: 'stdin' must be a string")
    limit = request.get("max_output", 4096)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise ValueError("shell: 'max_output' must be a non-negative integer")
    stdin = None if stdin is None else stdin.encode("utf-8", "replace")
    return command.encode("utf-8", "replace"), stdin, limit


class Shell:
    """The session's bash (see above), started at the first command and again
    after it ended."""

    def __init__(self):
        self.pid = None
        self.pidfd = self.script = self.out = self.err = self.status = -1
        self.ever = False           # a shell was started before
        self.seq = 0
        self.census = ProcessCensus()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.interrupted = False

    # life

    def start(self):
        ends = []
        try:
            script_r, self.script = os.pipe()
            self.out, out_w = os.pipe()
            self.err, err_w = os.pipe()
            self.status, status_w = os.pipe()
            ends = [script_r, out_w, err_w, status_w]
            env = {k: v for k, v in os.environ.items() if k not in ("BASH_ENV", "ENV")}
            env["SHELL"] = BASH
            dup = os.POSIX_SPAWN_DUP2
            self.pid = os.posix_spawn(
                BASH, ["bash", "--norc", "--noprofile", "-s"], env,
                file_actions=[(dup, script_r, 0), (dup, out_w, 1), (dup, err_w, 2),
                              (dup, status_w, STATUS_FD)],
                setsigdef=(signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ), setsigmask=())
            self.pidfd = os.pidfd_open(self.pid)
        except BaseException:
            self.forget()
            raise
        finally:
            for fd in ends:
                os.close(fd)
        for fd in (self.out, self.err, self.status):
            os.set_blocking(fd, False)
        self.ever = True
        write_all(self.script, SHELL_INIT.encode())

    def forget(self):
        """Closes our ends of a shell that is gone (or never came)."""
        for name in ("pidfd", "script", "out", "err", "status"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
            setattr(self, name, -1)
        self.pid = None

    def alive(self):
        if self.pid is None:
            return False
        try:
            if os.waitpid(self.pid, os.WNOHANG)[0] == 0:
                return True
        except ChildProcessError:   # reaped by someone else (the session's Python)
            pass
        self.forget()
        return False

    def reap(self):
        """The exit status of the shell, which has ended, as a shell reports
        one (128 + N for a signal); None when someone else reaped it."""
        try:
            _, st = os.waitpid(self.pid, 0)
        except ChildProcessError:
            st = None
        self.forget()
        if st is None:
            return None
        return os.WEXITSTATUS(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st)

    def kill(self):
        try:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        except OSError:
            pass
        self.reap()

    # one command

    def on_sigint(self, signum, frame):
        self.interrupted = True
        try:
            os.write(self.wake_w, b"!")
        except OSError:
            pass

    def run(self, request):
        command, stdin, limit = shell_request(request)
        out, err = ByteCapture(limit), ByteCapture(limit)
        new_shell = False
        exit_code, ended = None, False
        start = time.perf_counter()
        # Twice at most: a shell that died before it began the command (killed
        # by the session's Python just then) has not run it.
        for _ in range(2):
            if not self.alive():
                new_shell = new_shell or self.ever
                try:
                    self.start()
                except OSError as e:
                    err.take(("sesh runner: cannot start %s: %s\n" % (BASH, e)).encode())
                    ended = True
                    break
            try:
                exit_code, ended, begun = self.command(command, stdin, out, err)
            except OSError as e:        # no memory for the command's files
                err.take(("sesh runner: cannot pass the command to the shell: %s\n" % e).encode())
                break
            if begun or self.interrupted:
                break
        stdout, stdout_cut = out.value()
        stderr, stderr_cut = err.value()
        return {
            "exit_code": exit_code,
            "stdout": stdout,
            "stderr": stderr,
            "ms": int(round((time.perf_counter() - start) * 1000)),
            "stdout_truncated": stdout_cut,
            "stderr_truncated": stderr_cut,
            "new_shell": new_shell,
            "shell_ended": ended,
        }

    def command(self, command, stdin, out, err):
        """Runs one command; (exit code or None, whether the shell ended,
        whether it began the command)."""
        before = self.census.before_cell()          # the shell is among them
        self.seq += 1
        files = []
        previous = signal.signal(signal.SIGINT, self.on_sigint)
        self.interrupted = False
        try:
            files.append(memory_file("sesh-command", command))
            if stdin is not None:
                files.append(memory_file("sesh-stdin", stdin))
            me = os.getpid()
            paths = ["/proc/%d/fd/%d" % (me, fd) for fd in files] + ["/dev/null"]
            line = SHELL_LINE % (self.seq, paths[0], paths[1], self.seq)
            try:
                write_all(self.script, line.encode())
            except OSError:
                pass                    # the shell is gone: its pidfd says so
            return self.wait(before, out, err)
        finally:
            signal.signal(signal.SIGINT, previous)
            for fd in files:
                os.close(fd)

    def wait(self, before, out, err):
        status = b""
        begun = False
        deadline = None                 # set once an interrupt killed the command
        # poll, not select: the session's Python may hold descriptors past 1024
        watched = select.poll()
        for fd in (self.out, self.err, self.status, self.pidfd, self.wake_r):
            watched.register(fd, select.POLLIN)
        while True:
            timeout = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            ready = [fd for fd, _ in watched.poll(timeout)]
            if not ready and deadline is not None:
                # A loop of builtins, or a wait for an older process: only
                # ending the shell stops it. Its state goes with it.
                self.drain(out, err)
                self.kill()
                return None, True, True
            if self.wake_r in ready:
                while self.read_some(self.wake_r):
                    pass
                if self.interrupted and deadline is None:
                    self.sweep(before)
                    deadline = time.monotonic() + SHELL_GRACE
            for fd, capture in ((self.out, out), (self.err, err)):
                if fd in ready:
                    data = self.read_some(fd)
                    if data == b"":         # nobody writes there any more (exec >&-)
                        watched.unregister(fd)
                    capture.take(data or b"")
            if self.status in ready:
                data = self.read_some(self.status)
                if data == b"":
                    watched.unregister(self.status)
                status = (status + (data or b""))[-STATUS_MAX:]
                started, code = self.reported(status)
                begun = begun or started
                if code is not None:
                    self.drain(out, err)
                    return code, False, True
            if self.pidfd in ready:
                self.drain(out, err)
                return self.reap(), True, begun

    def reported(self, status):
        """Whether the status lines say the command began, and its exit code."""
        started, code = False, None
        for m in STATUS_LINE.finditer(status):
            if int(m.group(1)) == self.seq:
                if m.group(2) == b"+":
                    started = True
                else:
                    code = min(int(m.group(2)), 255)
        return started, code

    def sweep(self, before):
        """At an interrupt: every process born since the command began is
        killed and reaped (the shell, which is older, stays)."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            stop_new_processes(before)
        finally:
            signal.signal(signal.SIGINT, self.on_sigint)

    @staticmethod
    def read_some(fd):
        """Bytes, b"" at the end of the stream, None when nothing is there yet."""
        try:
            return os.read(fd, 65536)
        except BlockingIOError:
            return None

    def drain(self, out, err):
        """What the command wrote before it ended is in the pipes by now."""
        for fd, capture in ((self.out, out), (self.err, err)):
            left = DRAIN_MAX
            while left > 0:
                data = self.read_some(fd)
                if not data:
                    break
                capture.take(data)
                left -= len(data)


def bash_version():
    try:
        r = subprocess.run([BASH, "--norc", "--noprofile", "-c",
                            'printf %s "${BASH_VERSINFO[0]}.${BASH_VERSINFO[1]}.${BASH_VERSINFO[2]}"'],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        return r.stdout.decode("utf-8", "replace")
    except (OSError, subprocess.SubprocessError):
        return ""


def main(forked=None):
    """Serves the pool. forked: the Runner of a sandbox forked from the fork
    server, loaded and warmed up there; else one is made here."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.set_inheritable(CHANNEL, False)
    os.register_at_fork(after_in_child=in_forked_child)
    try:
        os.chdir("/mnt/data")
    except OSError:
        pass
    start = read_frame()
    if not isinstance(start, dict) or start.get("op") != "start":
        return                      # not the pool speaking: nothing to serve
    kind = start.get("kind", "python")
    runner = shell = None
    if kind != "shell":             # a Shell pool's sandbox loads no IPython
        runner = forked or Runner(plots=start.get("plots", "eager"))
        signal.signal(signal.SIGINT, runner.on_sigint)
        sys.unraisablehook = runner.on_unraisable
        try:
            # A forked runner's first cell also writes to the pages it shares
            # with the fork server: a ready sandbox pays that here too.
            if not forked or start.get("plots") == "eager":
                runner.warm_up()
        except Exception as e:      # a slower first cell, nothing worse
            print("sesh runner: warm-up failed: %s" % e, file=sys.stderr)
    write_frame({"op": "ready"})
    while True:
        request = read_frame()
        if request is None:
            return
        op = request.get("op") if isinstance(request, dict) else None
        seq = request.get("seq") if isinstance(request, dict) else None
        try:
            if op == "execute" and runner is not None:
                reply = runner.execute(request)
                if not CHANNEL_OWNER:
                    os._exit(0)
            elif op == "execute":
                reply = {"error": "this sandbox runs shell commands only"}
            elif op == "shell":
                if shell is None:
                    shell = Shell()
                reply = shell.run(request)
            elif op == "metadata":
                reply = metadata(kind)
            else:
                reply = {"error": "unknown op %r" % (op,)}
        except Exception as e:
            reply = {"error": "%s: %s" % (type(e).__name__, e)}
        reply["seq"] = seq
        write_frame(reply)



# -- the fork server -------------------------------------------------------------
#
# sesh-pool also runs this file as its fork server (zygote.h): one interpreter
# that imports what sessions use, makes the shell and warms it up once, then
# forks a sandbox for each new session, which enters its confinement in C
# (zygote_enter.c) and serves the protocol above through main(). Its
# descriptors, besides 0-2 (the pool's log):
#
#   3  a SOCK_SEQPACKET socket to the pool: "ready" once loaded; then each
#      request (its bytes, its descriptors by SCM_RIGHTS) is answered
#      "forked PID" or "refused WHY"; the pool closing it ends the server
#   5  a memory file: the shared library built from zygote_enter.c
#   6  the pool's mount namespace
#
# A fork copies only the calling thread, so the server keeps no other: no
# history thread (the Runner turns history off), thread pools that imports
# start stopped, and each request refused while another thread is alive.

ZYGOTE_CONTROL = 3
ZYGOTE_LIBRARY = 5
ZYGOTE_MOUNTS = 6
ZYGOTE_REQUEST_MAX = 4096
ZYGOTE_FDS_MAX = 16
PRELOAD = ("numpy", "pandas", "sklearn")    # IPython and matplotlib come with the Runner


def threads():
    """The threads of this process (/proc/self/stat, field 20)."""
    with open("/proc/self/stat", "rb") as f:
        stat = f.read()
    return int(stat[stat.rindex(b")") + 2:].split()[17])


def stop_thread_pools():
    """Stops the thread pools that imports started (numexpr's); returns what
    start_thread_pools gives each session back."""
    numexpr = sys.modules.get("numexpr")
    return {"numexpr": numexpr.set_num_threads(1)} if numexpr else {}


def start_thread_pools(saved):
    numexpr = sys.modules.get("numexpr")
    if numexpr and saved.get("numexpr", 1) > 1:
        numexpr.set_num_threads(saved["numexpr"])


def reseed():
    """Generators seeded when the server imported them would give every
    session the same numbers: each session seeds its own."""
    import random
    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()
    process = sys.modules.get("multiprocessing.process")
    if process is not None:
        process.current_process().authkey = os.urandom(32)


class ForkServer:
    def __init__(self):
        import ctypes
        import gc
        import socket
        self.control = socket.socket(fileno=ZYGOTE_CONTROL)
        # A PyDLL keeps Python's lock through the call: there is one thread.
        lib = ctypes.PyDLL("/proc/self/fd/%d" % ZYGOTE_LIBRARY)
        os.close(ZYGOTE_LIBRARY)
        self.enter = lib.sesh_enter_fork
        self.enter.restype = ctypes.c_long
        self.enter.argtypes = (ctypes.c_char_p, ctypes.c_ulong, ctypes.POINTER(ctypes.c_int),
                               ctypes.c_int, ctypes.c_int)
        self.fd_array = ctypes.c_int * ZYGOTE_FDS_MAX
        self.environ = dict(os.environ)         # the sandbox's own, as the pool set it
        for name in PRELOAD:
            try:
                __import__(name)
            except Exception as e:              # sessions import it themselves then
                print("sesh fork server: %s not preloaded: %s" % (name, e), file=sys.stderr)
        self.runner = Runner(plots="eager")
        os.close(self.runner.census.fd)         # the server's pid namespace: none of a session's
        self.runner.warm_up()
        self.pools = stop_thread_pools()
        self.tmp_dirs = self.directories("/tmp")
        self.null_fds = self.opened_by_imports()
        gc.collect()
        gc.freeze()                             # the collector leaves the shared pages alone
        alive = threads()
        if alive != 1:                          # a thread pool no stop_thread_pools knows
            raise RuntimeError("%d threads are alive after the imports: a fork would copy "
                               "one" % alive)

    @staticmethod
    def directories(top):
        """What the imports made in the server's /tmp (matplotlib's and
        IPython's folders): each session gets the same, empty. Not the
        interpreter's own directories bound there (a venv under /tmp), nor
        the folders above them: the sandbox binds those itself."""
        dev = os.lstat(top).st_dev
        found, mounts = [], []
        for root, dirs, _ in os.walk(top):
            mine = []
            for d in sorted(dirs):
                path = os.path.join(root, d)
                st = os.lstat(path)
                if st.st_dev != dev:
                    mounts.append(path + "/")
                    continue
                found.append((path, st.st_mode & 0o7777))
                mine.append(d)
            dirs[:] = mine
        return [(path, mode) for path, mode in found
                if not any(m.startswith(path + "/") for m in mounts)]

    @staticmethod
    def opened_by_imports():
        """Descriptors the imports keep open (IPython's /dev/null): a session
        gets each again at its number, or Python's objects holding it would
        hold whatever the number opens next. Anything else open is refused."""
        own = {0, 1, 2, ZYGOTE_CONTROL, ZYGOTE_MOUNTS}
        nulls = []
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            try:
                target = os.readlink("/proc/self/fd/%d" % fd)
            except OSError:
                continue                        # the listing's own
            if fd in own:
                continue
            if target != os.devnull:
                raise RuntimeError("descriptor %d (%s) is open in the fork server" % (fd, target))
            nulls.append(fd)
        return sorted(nulls)

    def receive(self):
        """The next request and its descriptors; (None, []) when the pool is gone."""
        import array
        import socket
        data, ancillary, flags, _ = self.control.recvmsg(
            ZYGOTE_REQUEST_MAX, socket.CMSG_SPACE(ZYGOTE_FDS_MAX * 4))
        fds = array.array("i")
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
        if not data or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or \
                len(fds) > ZYGOTE_FDS_MAX:
            for fd in fds:
                os.close(fd)
            return (None if not data else b""), []
        return data, list(fds)

    def serve(self):
        self.control.send(b"ready")
        while True:
            request, fds = self.receive()
            if request is None:
                return
            self.control.send(self.fork(request, fds))

    def fork(self, request, fds):
        """Forks a sandbox; returns the answer in the server, never in the sandbox."""
        alive = threads()
        if not request or alive != 1:
            for fd in fds:
                os.close(fd)
            why = "%d threads are alive in the fork server" % alive if request else \
                "the request was cut short"
            return b"refused " + why.encode()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = self.enter(request, len(request), self.fd_array(*fds), len(fds), ZYGOTE_MOUNTS)
        if pid == 0:
            self.become_session()
        for fd in fds:
            os.close(fd)
        return b"forked %d" % pid if pid > 0 else b"refused " + os.strerror(-pid).encode()

    def become_session(self):
        """In the sandbox's runner, confined: what a runner started by bwrap
        has, and nothing of the server's; then the session's protocol."""
        try:
            self.control.detach()               # descriptor 3 is the channel now
            for fd in self.null_fds:            # before anything opens a file
                null = os.open(os.devnull, os.O_RDWR)
                if null != fd:
                    os.dup2(null, fd, inheritable=False)
                    os.close(null)
            os.environ.clear()
            os.environ.update(self.environ, PWD="/mnt/data")
            reseed()
            runner = self.runner
            runner.shell.execution_count = 1
            runner.census = ProcessCensus()
            for path, mode in self.tmp_dirs:
                os.mkdir(path, mode)
                os.chmod(path, mode)
            start_thread_pools(self.pools)
        except BaseException:
            import traceback
            traceback.print_exc()
            os._exit(1)
        main(forked=runner)
        sys.exit(0)                             # out through the server's frames, as any end


if __name__ == "__sesh_zygote__":
    ForkServer().serve()
else:
    main()
