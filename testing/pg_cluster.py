"""A throwaway PostgreSQL cluster for the test suite, started and stopped by pytest.

The root ``conftest.py`` exposes it as fixtures (``pg_cluster``, ``postgres_url``,
``database_url``); tests do not use this module directly. The cluster:

* uses the server binaries (``initdb``, ``pg_ctl``, ``postgres``) of ``$PG_BINDIR``, else
  those on PATH, else the newest ``/usr/lib/postgresql/<version>/bin`` (Debian's layout);
* lives in a temporary directory (data, socket and log), listens on a free TCP port of
  127.0.0.1 only, trusts every local connection, and runs with ``fsync=off`` (a test
  database need not survive a power cut; durability costs seconds per test run);
* when the tests run as root, runs as the ``postgres`` system user (the server refuses
  root), so its directory is handed to that user;
* is stopped and its directory removed by ``stop()`` (the session fixture's teardown, and
  an ``atexit`` hook), and by a small watchdog process if the test process dies without
  running either (SIGKILL, ``os._exit``): no server outlives the test run.

Every wait is bounded; a server that does not start raises ``PostgresClusterError`` with
one line: the reason and the tail of the server log.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import IO, TYPE_CHECKING

from netns import finish_watchdog, start_watchdog  # beside this file; standard library only

if TYPE_CHECKING:  # psycopg is imported when a cluster is used, not when tests are collected
    from typing import LiteralString

    import psycopg
    from psycopg import sql

#: The three programs a cluster needs; ``pg_ctl`` and ``initdb`` find ``postgres`` next
#: to their own (symlink-resolved) location, so all three must share one directory.
SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
#: Debian/Ubuntu install each major version's server here.
DEBIAN_BINDIRS = "/usr/lib/postgresql/*/bin"
#: The superuser initdb creates (``-U``); with trust auth it needs no password.
SUPERUSER = "postgres"
#: The system user the server runs as when the tests run as root.
SYSTEM_USER = "postgres"

INITDB_TIMEOUT_S = 120.0
START_TIMEOUT_S = 30  # pg_ctl -t: how long pg_ctl waits for the server to accept connections
STOP_TIMEOUT_S = 30
CONNECT_TIMEOUT_S = 10
STATEMENT_TIMEOUT_MS = 60_000
#: Slack on top of pg_ctl's own -t before the subprocess is killed.
_SUBPROCESS_SLACK_S = 15.0
_LOG_TAIL_LINES = 3
_MAX_MESSAGE_CHARS = 600


class PostgresClusterError(RuntimeError):
    """The throwaway cluster could not be set up; the message is one readable line."""


@dataclass(frozen=True)
class PostgresBinaries:
    bindir: Path
    #: ``postgres --version`` without the program name, e.g. ``PostgreSQL 15.18 (Debian ...)``.
    version: str

    def program(self, name: str) -> str:
        return str(self.bindir / name)

    def describe(self) -> str:
        return f"{self.version}, server binaries in {self.bindir}"


def _has_server_programs(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in SERVER_PROGRAMS)


def _version_key(bindir: Path) -> tuple[int, ...]:
    """``/usr/lib/postgresql/15/bin`` -> (15,); "9.6" -> (9, 6); unknown sorts first."""
    return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name)) or (-1,)


def _candidate_bindirs() -> list[Path]:
    override = os.environ.get("PG_BINDIR", "").strip()
    if override:
        # An explicit choice is the only candidate: silently using another server
        # would hide a typo.
        return [Path(override)]
    candidates: list[Path] = []
    on_path = shutil.which("pg_ctl")
    if on_path is not None:
        candidates.append(Path(on_path).resolve().parent)
    debian = sorted(
        (path for path in Path("/").glob(DEBIAN_BINDIRS.lstrip("/")) if path.is_dir()),
        key=_version_key,
        reverse=True,
    )
    candidates.extend(debian)
    return candidates


@cache
def find_postgres_binaries() -> PostgresBinaries | None:
    """The server binaries to use, or None when this machine has none."""
    for bindir in _candidate_bindirs():
        if not _has_server_programs(bindir):
            continue
        try:
            result = subprocess.run(
                [str(bindir / "postgres"), "--version"],
                capture_output=True,
                text=True,
                timeout=20,
                check=True,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        # "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        match = re.search(r"\(PostgreSQL\)\s*(.+)", result.stdout)
        version = f"PostgreSQL {match.group(1).strip()}" if match else result.stdout.strip()
        return PostgresBinaries(bindir=bindir, version=version)
    return None


def missing_binaries_reason(outcome: str = "the PostgreSQL variants were skipped") -> str:
    where = (
        f"PG_BINDIR={os.environ['PG_BINDIR']}"
        if os.environ.get("PG_BINDIR", "").strip()
        else f"PATH or {DEBIAN_BINDIRS}"
    )
    return (
        f"PostgreSQL server binaries not found ({'/'.join(SERVER_PROGRAMS)} in {where}): "
        f"{outcome}, SQLite only"
    )


def _sql(template: LiteralString, *identifiers: str) -> sql.Composed:
    """``template`` with ``{}`` replaced by the quoted ``identifiers``."""
    from psycopg import sql

    return sql.SQL(template).format(*(sql.Identifier(name) for name in identifiers))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _one_line(text: str) -> str:
    line = " | ".join(part.strip() for part in text.splitlines() if part.strip())
    return line if len(line) <= _MAX_MESSAGE_CHARS else "..." + line[-_MAX_MESSAGE_CHARS:]


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


def _traversable_by_others(directory: Path) -> bool:
    """Whether a non-owner may walk down to ``directory`` (for the ``postgres`` user)."""
    for path in (directory, *directory.parents):
        try:
            if not path.stat().st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


# The watchdog: started per cluster in a session of its own, it waits on a pipe from the
# test process. "done" on the pipe means the cluster was stopped properly; end-of-file
# without it means the test process died, so it stops the server and removes its files.
_WATCHDOG = """
import json, shutil, signal, subprocess, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
stop, base = json.loads(sys.argv[1]), sys.argv[2]
if sys.stdin.readline().strip() != "done":
    try:
        subprocess.run(stop, cwd=base, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
    except Exception:
        pass
    shutil.rmtree(base, ignore_errors=True)
"""


@dataclass
class PostgresCluster:
    """One throwaway server; ``start()`` it, ``create_database()`` per test, ``stop()``."""

    binaries: PostgresBinaries
    host: str = "127.0.0.1"
    port: int = 0
    base_dir: Path | None = None
    #: run the server in this network namespace (``ip netns exec``; ``host`` is one of its
    #: addresses): a database on another host of a ``netns.Lab``
    netns: str | None = None
    #: extra ``pg_hba.conf`` lines (e.g. ``host all all 10.0.0.0/24 scram-sha-256``), for
    #: clients that do not connect from 127.0.0.1
    hba: tuple[str, ...] = ()
    #: Seconds ``start()`` took (initdb + pg_ctl start), once started.
    start_seconds: float = 0.0
    #: Seconds each ``create_database()`` took.
    create_seconds: list[float] = field(default_factory=list)
    server_version_num: int = 0
    _running: bool = False
    _stopped: bool = False
    _run_as: list[str] = field(default_factory=list)
    _owner: tuple[int, int] | None = None
    _watchdog: subprocess.Popen[str] | None = None

    # ---- paths ------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self._base / "data"

    @property
    def socket_dir(self) -> Path:
        return self._base / "sock"

    @property
    def log_file(self) -> Path:
        return self._base / "server.log"

    @property
    def _base(self) -> Path:
        if self.base_dir is None:
            raise PostgresClusterError("the PostgreSQL test cluster was not started")
        return self.base_dir

    # ---- lifecycle --------------------------------------------------------------------

    def start(self) -> PostgresCluster:
        """initdb a fresh cluster and start it; raises ``PostgresClusterError`` (one line)."""
        if self._running:
            return self
        began = time.monotonic()
        self._prepare_user()
        self.base_dir = Path(tempfile.mkdtemp(prefix="pytest-pg-", dir=self._temp_root()))
        atexit.register(self.stop)
        self.socket_dir.mkdir()
        if self._owner is not None:
            for path in (self.base_dir, self.socket_dir):
                os.chown(path, *self._owner)
        self._start_watchdog()
        try:
            self._initdb()
            self._start_server()
            self.server_version_num = int(self._admin_query(_sql("SHOW server_version_num")))
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop the server (fast, then immediate, then SIGKILL) and remove its files.

        Idempotent, bounded, and never raises: it runs from fixture teardown and atexit.
        """
        if self._stopped or self.base_dir is None:
            return
        self._stopped = True
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        try:
            if (self.data_dir / "postmaster.pid").exists():  # else no server to stop
                self._stop_server()
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self._running = False
            self._finish_watchdog()

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop_server(self) -> None:
        """Stop the server but keep its data: its clients lose their connections."""
        self._stop_server()
        self._running = False

    def restart_server(self) -> None:
        """Start a server stopped by ``stop_server()`` again, on the same port."""
        self._start_server(same_port=True)

    # ---- databases --------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL (psycopg 3) for ``database`` as the superuser, over TCP."""
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database (from template1); returns its name."""
        name = f"t_{secrets.token_hex(6)}"
        began = time.monotonic()
        self._admin_execute(_sql("CREATE DATABASE {}", name))
        self.create_seconds.append(time.monotonic() - began)
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, disconnecting whatever is still connected to it."""
        if not self._running:
            return
        if self.server_version_num >= 130000:
            self._admin_execute(_sql("DROP DATABASE IF EXISTS {} WITH (FORCE)", name))
            return
        # Before PostgreSQL 13 there is no FORCE: disconnect the database's sessions first.
        from psycopg import sql

        self._admin_execute(
            sql.SQL(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = {} AND pid <> pg_backend_pid()"
            ).format(sql.Literal(name))
        )
        self._admin_execute(_sql("DROP DATABASE IF EXISTS {}", name))

    def summary(self) -> str:
        if not self._running and not self.start_seconds:
            return f"PostgreSQL test cluster not started ({self.binaries.describe()})"
        count = len(self.create_seconds)
        average = sum(self.create_seconds) / count if count else 0.0
        return (
            f"PostgreSQL test cluster: {self.binaries.describe()}; started in "
            f"{self.start_seconds:.2f}s on {self.host}:{self.port}; {count} database(s) "
            f"created, {average * 1000:.0f} ms each on average"
        )

    # ---- internals --------------------------------------------------------------------

    def _prepare_user(self) -> None:
        if os.geteuid() != 0:
            self._run_as = []
            self._owner = None
            return
        try:
            entry = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise PostgresClusterError(
                f"the tests run as root and there is no {SYSTEM_USER!r} system user to run "
                "the PostgreSQL server as (the server refuses to run as root)"
            ) from None
        self._owner = (entry.pw_uid, entry.pw_gid)
        if shutil.which("runuser"):
            self._run_as = ["runuser", "-u", SYSTEM_USER, "--"]
        elif shutil.which("su"):
            self._run_as = ["su", SYSTEM_USER, "-s", "/bin/sh", "-c"]
        else:
            raise PostgresClusterError(
                "the tests run as root but neither runuser nor su exists to run the "
                f"PostgreSQL server as {SYSTEM_USER!r}"
            )

    def _temp_root(self) -> str | None:
        """Where the cluster directory goes: the usual temp dir, unless root's TMPDIR is
        somewhere the ``postgres`` user cannot reach; sockets also need a short path."""
        root = Path(tempfile.gettempdir())
        too_long = len(str(root)) > 60  # sun_path holds 107 bytes; leave room for the rest
        if (self._owner is not None and not _traversable_by_others(root)) or too_long:
            return "/tmp"
        return None

    def _command(self, argv: list[str], *, in_netns: bool = False) -> list[str]:
        netns = ["ip", "netns", "exec", self.netns] if in_netns and self.netns else []
        if not self._run_as:
            return [*netns, *argv]
        if self._run_as[0] == "su":
            return [*netns, *self._run_as, shlex.join(argv)]
        return [*netns, *self._run_as, *argv]

    def _env(self) -> dict[str, str]:
        # Drop PG* variables (PGDATA, PGPORT, PGHOST...) that would redirect the tools,
        # and use the C locale: minimal machines have no other, and initdb refuses a
        # locale that is not installed.
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env.update(LC_ALL="C", LANG="C", LANGUAGE="C")
        return env

    def _run(self, argv: list[str], timeout: float, what: str, *, in_netns: bool = False) -> str:
        """Run a server tool (as the server's user); its output, or a one-line error."""
        # Output goes to a file, not a pipe: pg_ctl leaves the server running, and a pipe
        # it inherited would keep a reader waiting for end-of-file until the server exits.
        with tempfile.TemporaryFile(mode="w+", errors="replace") as output:
            try:
                process = subprocess.Popen(
                    self._command(argv, in_netns=in_netns),
                    cwd=self._base,  # the postgres user may not be able to read the caller's cwd
                    env=self._env(),
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    # Its own process group: Ctrl-C in the terminal does not reach the tool,
                    # and a tool that overstays is killed with all its children.
                    start_new_session=True,
                )
            except OSError as error:
                raise PostgresClusterError(f"{what} could not run: {error}") from None
            try:
                returncode = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    os.killpg(process.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=10)
                raise PostgresClusterError(
                    f"{what} did not finish within {timeout:.0f}s; {self._log_context(output)}"
                ) from None
            if returncode != 0:
                raise PostgresClusterError(
                    f"{what} exited with {returncode}; {self._log_context(output)}"
                )
            output.seek(0)
            return output.read()

    def _log_context(self, output: IO[str]) -> str:
        output.seek(0)
        tool = _one_line("\n".join(output.read().splitlines()[-_LOG_TAIL_LINES:]))
        log = _one_line(_tail(self.log_file))
        parts = [
            f"output: {tool}" if tool else "",
            f"server log: {log}" if log else "",
        ]
        return "; ".join(part for part in parts if part) or "no output"

    def _initdb(self) -> None:
        self._run(
            [
                self.binaries.program("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",  # local socket and host 127.0.0.1/::1: no passwords
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",  # a throwaway cluster: skip initdb's fsync of every file
            ],
            timeout=INITDB_TIMEOUT_S,
            what="initdb",
        )
        if self.hba:
            with (self.data_dir / "pg_hba.conf").open("a") as hba:
                hba.write("".join(f"{line}\n" for line in self.hba))

    def _start_server(self, *, same_port: bool = False) -> None:
        last_error: PostgresClusterError | None = None
        for _attempt in range(3):
            if not same_port:
                self.port = _free_port()
            # fsync, synchronous_commit and full_page_writes off: crash safety is worth
            # nothing for a cluster deleted at the end of the run, and costs test time.
            options = (
                f"-p {self.port} -k {shlex.quote(str(self.socket_dir))} "
                f"-c listen_addresses={self.host} -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off"
            )
            try:
                self._run(
                    self._pg_ctl(
                        "-l",
                        str(self.log_file),
                        "-w",
                        "-t",
                        str(START_TIMEOUT_S),
                        "-o",
                        options,
                        "start",
                    ),
                    timeout=START_TIMEOUT_S + _SUBPROCESS_SLACK_S,
                    what="pg_ctl start",
                    in_netns=True,  # the server listens on the namespace's address
                )
            except PostgresClusterError as error:
                last_error = error
                # Another process took the port between the probe and the bind: retry.
                if "could not bind" in _tail(self.log_file, 20) and _attempt < 2:
                    self._stop_server()
                    self.log_file.unlink(missing_ok=True)
                    continue
                break
            self._running = True
            return
        assert last_error is not None
        raise PostgresClusterError(
            f"the PostgreSQL test cluster ({self.binaries.bindir}) did not start: {last_error}"
        ) from None

    def _stop_server(self) -> None:
        for mode in ("fast", "immediate"):
            try:
                self._run(
                    self._pg_ctl_stop(mode),
                    timeout=STOP_TIMEOUT_S + _SUBPROCESS_SLACK_S,
                    what=f"pg_ctl stop -m {mode}",
                )
            except PostgresClusterError:
                if not (self.data_dir / "postmaster.pid").exists():
                    return  # "no server running": nothing to stop
                continue
            return
        self._kill_postmaster()

    def _kill_postmaster(self) -> None:
        """Last resort when pg_ctl cannot stop the server: SIGKILL its postmaster."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)

    def _pg_ctl(self, *args: str) -> list[str]:
        """``pg_ctl -D DATA_DIR args``."""
        return [self.binaries.program("pg_ctl"), "-D", str(self.data_dir), *args]

    def _pg_ctl_stop(self, mode: str) -> list[str]:
        """``pg_ctl stop -m mode``, waiting for the server to end (up to ``STOP_TIMEOUT_S``)."""
        return self._pg_ctl("-m", mode, "-w", "-t", str(STOP_TIMEOUT_S), "stop")

    def _stop_command(self) -> list[str]:
        return self._command(self._pg_ctl_stop("immediate"))

    def _start_watchdog(self) -> None:
        self._watchdog = start_watchdog(
            ["-c", _WATCHDOG, json.dumps(self._stop_command()), str(self._base)],
            cwd=self._base,
            env=self._env(),
        )

    def _finish_watchdog(self) -> None:
        watchdog, self._watchdog = self._watchdog, None
        finish_watchdog(watchdog)

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=SUPERUSER,
            dbname="postgres",
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            # Bound every statement too: CREATE/DROP DATABASE can wait on locks.
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
        )

    def _admin_execute(self, statement: sql.Composed) -> None:
        with self._connect() as connection:
            connection.execute(statement)

    def _admin_query(self, statement: sql.Composed) -> str:
        with self._connect() as connection:
            row = connection.execute(statement).fetchone()
        if row is None:
            raise PostgresClusterError(f"{statement!r} returned no row")
        return str(row[0])


def main() -> int:
    """``python3 testing/pg_cluster.py``: one line on the binaries the tests will use
    (exit 0), or that there are none (exit 1). Standard library only, for .ci/run."""
    binaries = find_postgres_binaries()
    if binaries is None:
        print(missing_binaries_reason("the PostgreSQL test variants will be skipped"))
        return 1
    print(f"PostgreSQL tests will use {binaries.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
