"""Drives the real sesh console through a pseudo-terminal, as a person would.

    /usr/bin/python3 tests/console/console_test.py [name-substring ...]

Each test starts build/bin/sesh under pexpect (a fresh pty, so readline,
Ctrl-C and Ctrl-D behave as on a terminal), types into it and waits for what
the screen must show, or for another event (a file the session wrote, a
connection accepted); never for a fixed time. Python-mode tests use the local
pool that the sessions module starts by itself. Prints one line per test,
then "N passed, N failed".
"""
import base64
import glob
import os
import re
import struct
import sys
import tempfile
import time
import traceback

import pexpect

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("SESH_BUILD", "build")
SESH = os.path.join(ROOT, BUILD, "bin", "sesh") if not os.path.isabs(BUILD) else os.path.join(BUILD, "bin", "sesh")
TMP = tempfile.mkdtemp(prefix="console-", dir=os.environ.get("SESH_TEST_TMP"))
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[>=]|\r")


class Timeout(AssertionError):
    pass


class Console:
    """One sesh process on a pty (pexpect): send keys, expect screen text.
    Matching is done on the text without terminal codes and carriage returns."""

    def __init__(self, args=(), env=None, state=None):
        self.state = state or tempfile.mkdtemp(dir=TMP)
        environ = dict(os.environ)
        inputrc = os.path.join(TMP, "inputrc")
        with open(inputrc, "w") as f:
            f.write("set enable-bracketed-paste off\nset bell-style none\n")
        environ.update({
            "TERM": "xterm", "INPUTRC": inputrc, "XDG_STATE_HOME": self.state,
            "SESH_IMAGES": "file", "SESH_IMAGE_DIR": os.path.join(self.state, "images"),
            "NO_COLOR": "1",
        })
        for k in ("TERM_PROGRAM", "KITTY_WINDOW_ID", "LC_TERMINAL", "LUA_INIT", "LUA_INIT_5_4"):
            environ.pop(k, None)
        environ.update(env or {})
        self.child = pexpect.spawn(SESH, list(args), env=environ, cwd=self.state,
                                   dimensions=(40, 200))
        self.raw = b""
        self.seen = 0          # where the next expect starts looking

    def send(self, text):
        self.child.send(text.encode() if isinstance(text, str) else text)

    def line(self, text):
        self.send(text + "\r")

    def _read(self, timeout):
        try:
            self.raw += self.child.read_nonblocking(65536, timeout)
        except pexpect.TIMEOUT:
            return False
        except pexpect.EOF:
            raise EOFError("the console ended")
        return True

    def text(self):
        return ANSI.sub(b"", self.raw).decode("utf-8", "replace")

    def expect(self, pattern, timeout=10):
        """Waits for a regex in the screen text after the last match; returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.text(), self.seen)
            if m:
                self.seen = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout("did not see %r within %ss; the screen ends with:\n%s"
                              % (pattern, timeout, self.text()[-1500:]))
            try:
                self._read(min(left, 0.2))
            except EOFError:
                m = rx.search(self.text(), self.seen)
                if m:
                    self.seen = m.end()
                    return m
                raise Timeout("the console ended before %r; it showed:\n%s"
                              % (pattern, self.text()[-1500:]))

    def prompt(self, timeout=10):
        return self.expect(r"> $|> (?=\S)|>\s*$", timeout)

    def wait_exit(self, timeout=15):
        """The exit status (or minus the signal) once the console has ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._read(0.1)
            except EOFError:
                pass
            if not self.child.isalive():
                try:
                    while self._read(0.05):
                        pass
                except EOFError:
                    pass
                if self.child.exitstatus is not None:
                    return self.child.exitstatus
                return -self.child.signalstatus
        raise Timeout("the console did not exit within %ss" % timeout)

    def close(self):
        """Leaves as a person would (Ctrl-C, then Ctrl-D at the prompt), so the
        console closes its Python session; kills it only if it does not go."""
        if self.child.isalive():
            try:
                self.send("\x03")
                self.expect(r"[>$]\s*$", timeout=10)   # a prompt, _PROMPT's too
                self.send("\x04")
                self.wait_exit(timeout=20)
            except (Timeout, OSError):
                pass
        self.child.close(force=True)


def session_file(name, timeout=30):
    """Waits until the code of a session of this user's local pool has made
    the file /mnt/data/<name>: the code is running."""
    log = os.path.join(os.environ["XDG_RUNTIME_DIR"], "sesh", "pool.log")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(log) as f:
                state = re.search(r"state dir ([^,]+),", f.read())
        except OSError:
            state = None
        if state and glob.glob(os.path.join(state.group(1), "*", name)):
            return
        time.sleep(0.02)
    raise Timeout("no session made %s within %ss" % (name, timeout))


TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


# --- Lua, on a terminal -------------------------------------------------------

@test
def expression_printed_and_ctrl_d_exits():
    c = Console()
    try:
        c.expect(r"sesh 0\.1\.0")
        c.prompt()
        c.line("6*7")
        c.expect(r"\n42\n")
        c.line("{ 1, 2, k = 'v' }")
        c.expect(r'\{ 1, 2, k = "v" \}')
        c.prompt()
        c.send("\x04")
        assert c.wait_exit() == 0
    finally:
        c.close()


@test
def continuation_lines_use_prompt2():
    c = Console()
    try:
        c.prompt()
        c.line("for i = 1, 3 do")
        c.expect(r">> $")
        c.line("io.write(i, ';')")
        c.expect(r">> $")
        c.line("end")
        c.expect(r"1;2;3;")
        c.line("=40 + 2")
        c.expect(r"\n42\n")
        c.send("\x1b[A")                                # history holds =expr as typed
        c.expect(r"> =40 \+ 2")
        c.send("\x15")
        c.line("_PROMPT = 'lua$ '")
        c.expect(r"lua\$ $")
    finally:
        c.close()


@test
def completion_of_globals_fields_and_methods():
    c = Console()
    try:
        c.prompt()
        c.send("collectg\t")
        c.expect(r"collectgarbage")
        c.send("\x15")                                   # Ctrl-U: clear the line
        c.line("t = { alpha = 1, beta = 2 }")
        c.prompt()
        c.send("t.al\t")
        c.expect(r"t\.alpha")
        c.line("")
        c.expect(r"\n1\n")
        c.send("string.fo\t")
        c.expect(r"string\.format")
        c.line("('%d!', 7)")
        c.expect(r"\n7!\n")
        c.line("obj = setmetatable({}, { __index = { method_one = function() return 'm1' end, field = 3 } })")
        c.prompt()
        c.send("obj:meth\t")
        c.expect(r"obj:method_one")
        c.line("()")
        c.expect(r"\nm1\n")
        c.send("t.\t\t")                                  # two tabs list the choices
        c.expect(r"t\.alpha\s+t\.beta")
    finally:
        c.close()


@test
def history_persists_across_two_runs():
    state = tempfile.mkdtemp(dir=TMP)
    c = Console(state=state)
    try:
        c.prompt()
        c.line("marker_from_first_run = 4242")
        c.prompt()
        c.line("for i = 1, 2 do")
        c.line("  marker_sum = (marker_sum or 0) + i end")
        c.prompt()
        c.send("\x04")
        assert c.wait_exit() == 0
    finally:
        c.close()
    path = os.path.join(state, "sesh", "history")
    assert os.path.exists(path), "no history file at " + path
    assert os.stat(path).st_mode & 0o077 == 0, "history file is open to others"
    c = Console(state=state)
    try:
        c.prompt()
        c.send("\x1b[A")                                # Up: run 1's last chunk, whole
        c.expect(r"for i = 1, 2 do\s*\n\s*marker_sum")
        c.line("")
        c.prompt()
        c.line("marker_sum")
        c.expect(r"\n3\n")
        c.send("\x1b[A\x1b[A\x1b[A")                    # past it, to run 1's first line
        c.expect(r"marker_from_first_run = 4242")
        c.line("")
        c.prompt()
        c.line("marker_from_first_run")
        c.expect(r"\n4242\n")
    finally:
        c.close()


@test
def history_file_is_bounded():
    state = tempfile.mkdtemp(dir=TMP)
    os.makedirs(os.path.join(state, "sesh"))
    path = os.path.join(state, "sesh", "history")
    with open(path, "w") as f:
        for i in range(1500):
            f.write("#%d\nold_entry_%d = %d\n" % (1700000000 + i, i, i))
    c = Console(state=state)
    try:
        c.prompt()
        c.line("newest_entry = 1")
        c.prompt()
        c.send("\x04")
        c.wait_exit()
    finally:
        c.close()
    with open(path) as f:
        entries = [l for l in f.read().splitlines() if not l.startswith("#")]
    assert len(entries) <= 1000, "history has %d entries" % len(entries)
    assert entries[-1] == "newest_entry = 1", entries[-3:]
    assert "old_entry_1499 = 1499" in entries


@test
def error_keeps_the_console():
    c = Console()
    try:
        c.prompt()
        c.line("error('deliberate')")
        c.expect(r"stdin:1: deliberate\s*\nstack traceback:")
        c.prompt()
        c.line("1 + 1")
        c.expect(r"\n2\n")
    finally:
        c.close()


@test
def ctrl_c_interrupts_a_running_chunk():
    c = Console()
    try:
        c.prompt()
        c.line("io.write('looping\\n') io.flush() while true do end")
        c.expect(r"\nlooping\n")
        c.send("\x03")
        c.expect(r"interrupted!", timeout=5)
        c.prompt()
        c.line("'alive'")
        c.expect(r"\nalive\n")
    finally:
        c.close()


@test
def ctrl_c_at_the_prompt_drops_the_line():
    # readline's default since 8.1: with bracketed paste on, leaving the line
    # writes "\x1b[?2004l\r", which once put the ^C over the prompt
    inputrc = os.path.join(TMP, "inputrc-paste")
    with open(inputrc, "w") as f:
        f.write("set enable-bracketed-paste on\nset bell-style none\n")
    c = Console(env={"INPUTRC": inputrc})
    try:
        c.prompt()
        c.send("half_typed_garbage")
        c.expect("half_typed_garbage")
        c.send("\x03")
        c.prompt()
        # ^C after what was typed, before going back to the line's start
        # (written after the \r, it would overwrite the prompt)
        assert re.search(rb"> half_typed_garbage\^C(\x1b\[\?2004l)?\r+\n", c.raw), c.raw[-200:]
        c.line("6 * 7")
        c.expect(r"\n42\n")
        c.line("for i = 1, 2 do")
        c.expect(">> $")
        c.send("\x03")                                  # also abandons a continued chunk
        c.prompt()
        c.line("'fresh'")
        c.expect(r"\nfresh\n")
    finally:
        c.close()


# --- Python mode ----------------------------------------------------------------

def python_console(**kw):
    c = Console(**kw)
    c.prompt()
    return c


@test
def python_line_shows_result_stdout_and_traceback():
    c = python_console()
    try:
        c.line("%6 * 7")
        c.expect(r"Out\[1\]: 42", timeout=60)
        c.prompt()
        c.line("%print('hello from python')")
        c.expect(r"\nhello from python\n", timeout=30)
        c.prompt()
        c.line("%x = 10")
        c.prompt(timeout=30)
        c.line("%x * 2")
        c.expect(r"Out\[4\]: 20", timeout=30)
        c.line("%'text'")                              # a string as Python shows it
        c.expect(r"Out\[5\]: 'text'", timeout=30)
        c.line("%import pandas as pd; pd.DataFrame({'a': [1, 2]})")
        c.expect(r"Out\[6\]:\s*\n   a\s*\n0  1\s*\n1  2", timeout=60)   # a table starts below
        c.line("%1/0")
        c.expect(r"ZeroDivisionError", timeout=30)
        c.expect(r"\[Failure")
        c.prompt()
        c.line("%%")                                    # a cell of several lines
        c.expect(r"\.\.\.% $")
        c.line("a = 5")
        c.line("a * 3")
        c.line("")
        c.expect(r"Out\[\d+\]: 15", timeout=30)
        c.prompt()
        c.line("%for i in range(3):")
        c.expect(r"\.\.\.% $")
        c.line("    print('row', i)")
        c.line("")
        c.expect(r"row 0\s*\nrow 1\s*\nrow 2", timeout=30)
        c.prompt()
        c.send("\x1b[A")                                # the cell is one history entry
        c.expect(r"%for i in range\(3\):\s*\n\s*print\('row', i\)")
        c.line("")
        c.expect(r"row 0\s*\nrow 1\s*\nrow 2", timeout=30)
        c.prompt()
        c.send("\x04")
        assert c.wait_exit(timeout=30) == 0
    finally:
        c.close()


@test
def python_session_object_completes_its_methods():
    c = python_console()
    try:
        c.line("%1")
        c.expect(r"Out\[1\]: 1", timeout=60)
        c.prompt()
        c.line("s = require('console').session")
        c.prompt()
        c.send("s:exe\t")
        c.expect(r"s:execute")
        c.line("('3 + 4').result")
        c.expect(r"\n7\n", timeout=30)
    finally:
        c.close()


@test
def ctrl_c_during_a_long_python_sleep():
    c = python_console()
    try:
        c.line("%1")
        c.expect(r"Out\[1\]: 1", timeout=60)
        c.prompt()
        c.line("%import time; open('long-sleep', 'w').close(); time.sleep(60)")
        session_file("long-sleep")
        started = time.monotonic()
        c.send("\x03")
        c.expect(r"interrupted", timeout=10)
        c.prompt(timeout=10)
        took = time.monotonic() - started
        assert took < 10, "Ctrl-C took %.1fs" % took
        c.line("'lua still works'")
        c.expect(r"\nlua still works\n")
        # the pool saw the client go and stopped the sleep: the session answers
        # long before the 60 s are over, with the state of before
        c.prompt()
        c.line("%time.sleep(0) or 'session free'")
        # the interrupted cell counted too: Out[n] is IPython's number
        c.expect(r"Out\[3\]: 'session free'", timeout=15)
    finally:
        c.close()


@test
def second_ctrl_c_during_a_hung_request():
    c = python_console()
    try:
        c.line("%1")
        c.expect(r"Out\[1\]: 1", timeout=60)
        c.prompt()
        c.line("%import time; open('hung', 'w').close(); time.sleep(60)")
        session_file("hung")
        c.send("\x03")
        time.sleep(0.05)                                # a second Ctrl-C right after the first
        c.send("\x03")
        c.expect(r"interrupted", timeout=10)
        c.prompt(timeout=10)
        c.line("'survived'")
        c.expect(r"\nsurvived\n")
    finally:
        c.close()


@test
def python_session_is_closed_when_the_console_exits():
    c = python_console()
    try:
        c.line("%left_behind = 'still here'")
        m = c.expect(r"\[python session (\S+);", timeout=60)
        assert re.match(r"^[0-9a-f]{8}\u2026$", m.group(1)), m.group(1)   # the id is a secret
        c.prompt(timeout=30)
        c.line("=require('console').session.id")
        sid = c.expect(r"\n([0-9a-f-]{36})\n").group(1)
        assert sid.startswith(m.group(1)[:8])
        c.prompt(timeout=30)
        c.line("%left_behind")
        c.expect(r"Out\[2\]: 'still here'", timeout=30)
        c.prompt()               # a Ctrl-D typed ahead, before readline has the terminal, is lost
        c.send("\x04")
        assert c.wait_exit(timeout=30) == 0
    finally:
        c.close()
    # The same id again: a deleted session comes back empty.
    probe = Console(args=["-e", "local r = require('sessions').new{ id = '%s' }:execute('left_behind') "
                                "io.write('status=', r.status, '\\n')" % sid])
    try:
        probe.expect(r"status=Failure", timeout=60)
        assert probe.wait_exit(timeout=30) == 0
    finally:
        probe.close()


@test
def two_ctrl_c_during_a_request_to_a_server_that_never_answers():
    import socket
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)                                    # accepts, never answers
    server.settimeout(10)
    port = server.getsockname()[1]
    c = Console()
    conn = None
    try:
        c.prompt()
        c.line("r = require('sessions.http').client{}:request{ url = 'http://127.0.0.1:%d/hang' }" % port)
        conn, _ = server.accept()                       # the request is in flight
        started = time.monotonic()
        c.send("\x03")
        time.sleep(0.05)
        c.send("\x03")
        c.expect(r"interrupted", timeout=5)
        c.prompt(timeout=5)
        assert time.monotonic() - started < 5
        c.line("'back at the prompt'")
        c.expect(r"\nback at the prompt\n")
    finally:
        c.close()
        if conn:
            conn.close()
        server.close()


@test
def session_made_on_first_use_and_sessions_preloaded():
    c = Console()
    try:
        c.prompt()
        c.line("type(sessions), type(sessions.new)")      # a global, as the README's examples use it
        c.expect(r"\ntable\tfunction\n")
        c.line("require('console').session:upload{ name = 'first.txt', data = 'from lua' }.name")
        c.expect(r"\[python session [0-9a-f]{8}\u2026; closed when the console exits\]", timeout=60)
        c.expect(r"\nfirst\.txt\n", timeout=30)
        c.line("%open('first.txt').read()")
        c.expect(r"Out\[1\]: 'from lua'", timeout=30)
    finally:
        c.close()


@test
def completion_hides_private_names():
    c = python_console()
    try:
        c.line("s = sessions.new{}")
        c.prompt(timeout=60)
        c.send("s:\t\t")
        c.expect(r"s:execute")
        c.expect(r"\n> s:$")
        shown = c.text()[c.text().rfind("s:\x07") if "s:\x07" in c.text() else 0:]
        assert "s:_send" not in shown and "s:__gc" not in shown and "s:_client" not in shown, shown
        c.send("\x15")
        c.send("s:_se\t")                               # asked for, they are there
        c.expect(r"s:_send")
    finally:
        c.close()


@test
def python_tab_completion_from_the_session():
    c = python_console()
    try:
        c.line("%import numpy as np; completion_target_value = 41")
        c.expect(r"\[python session", timeout=60)
        c.prompt(timeout=30)
        c.send("%completion_target_va\t")
        c.expect(r"%completion_target_value", timeout=30)
        c.line(" + 1")
        # the completions ran no cell that counts: this is cell 2
        c.expect(r"Out\[2\]: 42", timeout=30)
        c.send("%np.arang\t")
        c.expect(r"%np\.arange", timeout=30)
        c.line("(3).sum()")
        c.expect(r"Out\[3\]: 3", timeout=30)
        c.line("%for i in range(1):")                    # a continuation line knows the cell
        c.expect(r"\.\.\.% $")
        c.send("    print(np.absolu\t")
        c.expect(r"np\.absolute", timeout=30)
        c.line("(-5))")
        c.line("")
        c.expect(r"\n5\n", timeout=30)
        c.prompt()
        # neither history nor the last input show the completions' cells
        c.line("%(len(In), _i)")
        c.expect(r"Out\[5\]: \(6, 'for i in range\(1\):\\n    print\(np\.absolute\(-5\)\)'\)", timeout=30)
    finally:
        c.close()


@test
def lua_executions_of_the_console_session_are_numbered_too():
    c = python_console()
    try:
        c.line("%1")
        c.expect(r"Out\[1\]: 1", timeout=60)
        c.prompt()
        c.line("s = require('console').session")
        c.prompt()
        c.line("s:execute('40 + 2')")
        c.expect(r"Out\[2\]: 42", timeout=30)
        c.line("%_")
        c.expect(r"Out\[3\]: 42", timeout=30)
        c.line("sessions.new{}:execute('7')")               # another session: no number of ours
        c.expect(r"\nOut: 7\n", timeout=60)
        c.line("s:restart() and nil")                       # a fresh interpreter counts from 1
        c.prompt(timeout=30)
        c.line("%'again'")
        c.expect(r"Out\[1\]: 'again'", timeout=60)
    finally:
        c.close()


@test
def ctrl_c_during_a_lua_execute_says_so_in_one_line():
    c = python_console()
    try:
        c.line("s = require('console').session")
        c.prompt()
        c.line("s:execute(\"import time; open('lua-sleep', 'w').close(); time.sleep(60)\")")
        session_file("lua-sleep")
        c.send("\x03")
        c.expect(r"\^C\s*\nsessions: execute failed: interrupted by Ctrl-C\n", timeout=10)
        c.prompt(timeout=10)
        assert "stack traceback" not in c.text(), c.text()[-800:]
        c.line("'still here'")
        c.expect(r"\nstill here\n")
    finally:
        c.close()


PLOT = ("%import matplotlib.pyplot as plt; plt.plot([1, 2, 3], [1, 4, 9]); "
        "plt.title('squares'); plt.show()")


def png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@test
def image_result_saved_to_a_file():
    c = python_console()
    try:
        c.line(PLOT)
        m = c.expect(r"\[png (\d+)x(\d+) saved to (\S+)\]", timeout=60)
        w, h, path = int(m.group(1)), int(m.group(2)), m.group(3)
        assert path.startswith(c.state), path
        with open(path, "rb") as f:
            assert png_size(f.read()) == (w, h)
    finally:
        c.close()


@test
def image_result_drawn_with_the_kitty_protocol():
    c = python_console(env={"SESH_IMAGES": "kitty"})
    try:
        c.line(PLOT)
        c.expect(r"\[png \d+x\d+\]", timeout=60)
        chunks = re.findall(rb"\x1b_G([^;]*);([A-Za-z0-9+/=]*)\x1b\\", c.raw)
        assert chunks, "no kitty graphics sequence"
        assert chunks[0][0].startswith(b"a=T,f=100"), chunks[0][0]
        assert all(ctl.endswith(b"m=1") for ctl, _ in chunks[:-1])
        assert chunks[-1][0].endswith(b"m=0")
        assert all(len(data) <= 4096 for _, data in chunks)
        png_size(base64.b64decode(b"".join(data for _, data in chunks)))
    finally:
        c.close()


@test
def image_result_drawn_as_an_iterm_inline_image():
    c = python_console(env={"SESH_IMAGES": "iterm"})
    try:
        c.line(PLOT)
        c.expect(r"\[png \d+x\d+\]", timeout=60)
        m = re.search(rb"\x1b\]1337;File=inline=1;size=(\d+)[^:]*:([A-Za-z0-9+/=]+)\x07", c.raw)
        assert m, "no iTerm2 inline image sequence"
        data = base64.b64decode(m.group(2))
        assert len(data) == int(m.group(1))
        png_size(data)
    finally:
        c.close()


@test
def kitty_detected_from_the_environment():
    c = python_console(env={"SESH_IMAGES": "", "KITTY_WINDOW_ID": "1"})
    try:
        c.line("require('console').image_mode()")
        c.expect(r"\nkitty\n")
        c.line("os.getenv('TERM_PROGRAM')")
        c.expect(r"\nnil\n")
    finally:
        c.close()


def main(argv):
    wanted = argv[1:]
    passed = failed = 0
    for fn in TESTS:
        if wanted and not any(w in fn.__name__ for w in wanted):
            continue
        started = time.monotonic()
        try:
            fn()
        except Exception:
            failed += 1
            print("not ok - %s (%.1fs)" % (fn.__name__, time.monotonic() - started))
            print("  " + traceback.format_exc().replace("\n", "\n  "))
        else:
            passed += 1
            print("ok - %s (%.1fs)" % (fn.__name__, time.monotonic() - started))
        sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
