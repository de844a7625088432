"""``python scripts/port_free.py PORT [TARGET]``: exit 0 when 127.0.0.1:PORT can be listened on,
else print one line with the SIM_PORT hint and exit 1 (``make sim``, ``make demo``)."""

from __future__ import annotations

import errno
import socket
import sys


def main(argv: list[str]) -> int:
    port = int(argv[0])
    target = argv[1] if len(argv) > 1 else "sim"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # as the simulator's server socket does: a port in TIME_WAIT is free
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            reason = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            print(
                f"port {port} is {reason} (another bybit-sim?): pick a free one, "
                f"e.g. make {target} SIM_PORT={port + 1}",
                file=sys.stderr,
            )
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
