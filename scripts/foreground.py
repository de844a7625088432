"""Run a command as the terminal's foreground process group: ``make run`` / ``make sim``.

A terminal's Ctrl-C goes to every process of the foreground process group. Under make, that
includes make itself, which then dies of SIGINT ("make: *** ... Interrupt", exit 130) even
when the command flushed and exited 0. Here the command gets a process group of its own and
the terminal while it runs, so Ctrl-C reaches only the command: make exits with the command's
exit code. Without a terminal (CI, a pipe) the command is simply executed.

    python scripts/foreground.py uv run recorder symbols=btc
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: foreground.py COMMAND [ARG...]", file=sys.stderr)
        return 2
    try:
        tty = os.open("/dev/tty", os.O_RDWR)
    except OSError:
        tty = None
    if tty is None or os.tcgetpgrp(tty) != os.getpgrp():
        os.execvp(argv[0], argv)  # no terminal we own: nothing to hand over
    signal.signal(
        signal.SIGTTOU, signal.SIG_IGN
    )  # taking the terminal back from a background group
    try:
        child = subprocess.Popen(argv, process_group=0)
    except OSError as exc:
        print(f"{argv[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    with contextlib.suppress(OSError):  # the child has already exited, or the terminal went away
        os.tcsetpgrp(tty, child.pid)
    try:
        while True:
            try:
                code = child.wait()
                break
            except KeyboardInterrupt:  # a Ctrl-C sent before the hand-over: pass it on
                child.send_signal(signal.SIGINT)
    finally:
        with contextlib.suppress(OSError):
            os.tcsetpgrp(tty, os.getpgrp())
        os.close(tty)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
