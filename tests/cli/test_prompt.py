#!/usr/bin/env python3
"""The interactive prompt (cli/repl.c), driven through a pseudo-terminal:
it starts only with a terminal on stdin, which the golden cases do not
have. Each case types its lines one at a time, each after the prompt
that asks for it, and checks the exit status and what the terminal
showed. usage: test_prompt.py ERYX_BINARY"""
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import time

ERYX = os.path.realpath(sys.argv[1])
failures = 0


def prompt(args, lines, env, cwd, limit=20.0):
    """Runs eryx ARGS on a terminal, typing LINES: (status, screen)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(cwd)
        os.execve(ERYX, [ERYX] + args, env)
    screen, sent, deadline = b"", 0, time.monotonic() + limit
    status = None
    while time.monotonic() < deadline:
        # The next line goes once the prompt for it is on the screen.
        if sent < len(lines) and screen.count(b">>> ") + screen.count(b"... ") > sent:
            os.write(fd, lines[sent].encode() + b"\r")
            sent += 1
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                data = b""
            if not data:
                break
            screen += data
    else:
        os.kill(pid, 9)
        screen += b"\n[killed: no exit in time]"
    _, st = os.waitpid(pid, 0)
    status = os.waitstatus_to_exitcode(st)
    os.close(fd)
    return status, screen.decode(errors="replace")


def terminal_after_sigterm(env, cwd, limit=20.0):
    """Runs the prompt on a terminal, sends SIGTERM once it waits for a
    line: (exit status, whether the terminal echoes and reads lines)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(cwd)
        os.execve(ERYX, [ERYX], env)
    screen, deadline = b"", time.monotonic() + limit
    while b">>> " not in screen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            screen += os.read(fd, 65536)
    time.sleep(0.2)  # the line editor sets the terminal up after the prompt
    os.kill(pid, signal.SIGTERM)
    _, st = os.waitpid(pid, 0)
    lflag = termios.tcgetattr(fd)[3]
    os.close(fd)
    return (os.waitstatus_to_exitcode(st),
            bool(lflag & termios.ECHO) and bool(lflag & termios.ICANON))


def check(name, got_status, want_status, screen, must_show=()):
    global failures
    missing = [s for s in must_show if s not in screen]
    if got_status == want_status and not missing:
        print(f"ok {name}")
        return
    failures += 1
    print(f"FAIL {name}: status {got_status}, want {want_status}; "
          f"missing {missing!r}\n--- screen ---\n{screen}\n---")


def main():
    home = tempfile.mkdtemp()
    try:
        env = dict(os.environ, HOME=home, XDG_CACHE_HOME=os.path.join(home, "cache"),
                   TERM="dumb")
        # SystemExit and os._exit end the prompt with their status, as
        # Python's prompt does; the lines after them are never read.
        cases = [
            ("exit()", ["x = 1", "exit()", "print('after')"], 0),
            ("quit(6)", ["quit(6)"], 6),
            ("sys.exit(3)", ["import sys", "sys.exit(3)", "print('after')"], 3),
            ("raise SystemExit(4)", ["raise SystemExit(4)"], 4),
            ("SystemExit in a block", ["if True:", "    raise SystemExit(7)", ""], 7),
            ("os._exit(5)", ["import os", "os._exit(5)"], 5),
            # A negative status is a process's: 255 (the prompt went on).
            ("sys.exit(-1)", ["import sys", "sys.exit(-1)", "print('after')"], 255),
            ("os._exit(-1)", ["import os", "os._exit(-1)"], 255),
        ]
        for name, lines, want in cases:
            status, screen = prompt([], lines, env, home)
            check(name, status, want, screen)
            if "after" in screen.split("print('after')")[-1]:
                check(name + ": nothing runs after it", 1, 0, screen)
        # A caught SystemExit is only an exception: the prompt goes on.
        status, screen = prompt([], ["try:", "    exit(9)", "except SystemExit:",
                                     "    print('caught', 6 * 7)", "", "exit(0)"], env, home)
        check("caught SystemExit", status, 0, screen, ["caught 42"])
        # With --session, the session is saved at exit() as at Ctrl-D.
        status, screen = prompt(["--session", "s.img"], ["x = 41", "exit(2)"], env, home)
        check("--session, exit(2)", status, 2, screen)
        out = subprocess.run([ERYX, "--session", "s.img", "-c", "print(x + 1)"], cwd=home,
                             env=env, capture_output=True, text=True)
        check("--session saved at exit()", out.returncode, 0, out.stdout, ["42"])
        # --timeout limits each entry; without it an entry has no limit.
        status, screen = prompt(["--timeout", "300"],
                                ["while True: pass", "print('still here', 6 * 7)", "exit()"],
                                env, home)
        check("--timeout at the prompt", status, 0, screen,
              ["time limit", "still here 42"])
        # An entry that does not unwind is stopped hard, and the interpreter
        # with it: a fresh one goes on (the prompt ended with 70 until
        # 2026-12-07); with --session the prompt ends, the file untouched.
        stuck = ["x = 1", "try:", "    while 1: pass", "except KeyboardInterrupt:",
                 "    while 1: pass", ""]
        status, screen = prompt(["--timeout", "300"],
                                stuck + ["print('fresh', 'x' in globals())", "exit(3)"], env, home)
        check("a hard stop at the prompt: a fresh interpreter", status, 3, screen,
              ["stopped hard", "a fresh one goes on", "fresh False"])
        status, screen = prompt(["--timeout", "300", "--session", "s.img"],
                                stuck + ["print('never')"], env, home)
        check("a hard stop at the prompt with --session", status, 70, screen,
              ["the session is dead"])
        out = subprocess.run([ERYX, "--session", "s.img", "-c", "print(x + 1)"], cwd=home,
                             env=env, capture_output=True, text=True)
        check("--session kept as saved before", out.returncode, 0, out.stdout, ["42"])
        status, screen = prompt([], ["import time", "time.sleep(0.5); print('slept', 1)",
                                     "exit()"], env, home)
        check("no --timeout: no limit", status, 0, screen, ["slept 1"])
        # SIGTERM at the prompt gives the terminal back as it was: the
        # line editor's raw mode stayed (no echo) when eryx died of it.
        for term in ("dumb", "xterm"):
            status, cooked = terminal_after_sigterm(dict(env, TERM=term), home)
            check(f"SIGTERM at the prompt (TERM={term}): the terminal as it was", status,
                  -signal.SIGTERM, "echo and lines" if cooked else "raw", ["echo and lines"])
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print("prompt:", "ok" if not failures else f"{failures} failed")
    sys.exit(1 if failures else 0)


main()
