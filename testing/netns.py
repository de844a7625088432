"""Separate hosts on one machine, for tests: network namespaces joined by a bridge.

A ``Lab`` is a Linux bridge in the root namespace and one network namespace per host, each
joined to the bridge by a veth pair (``eth0`` inside, ``<lab>v<n>`` on the bridge). Every host
has its own address on one private /24; the root namespace has ``.1`` on the bridge, so the
test process reaches every host (and the hosts reach each other through the bridge):

    root namespace:  bridge 10.213.x.1/24 ──┬── veth ═ eth0 10.213.x.2  (host "sim")
                                            ├── veth ═ eth0 10.213.x.3  (host "pg")
                                            └── veth ═ eth0 10.213.x.4  (host "r1") ...

``lab.popen(host, argv)`` runs a program in a host's namespace (``ip netns exec``), with its own
host name when asked (``unshare --uts``: ``socket.gethostname()`` says it). ``lab.cut(host)``
sets the bridge end of the host's link down: a real network fault (packets are dropped, no
reset is sent, TCP retransmits), which ``lab.restore(host)`` ends.

``close()`` ends every process left in the lab's namespaces (SIGTERM, then SIGKILL), deletes the
namespaces (and with them the veth pairs) and the bridge. It is idempotent and never raises. A
watchdog process does the same if the test process dies without calling it (SIGKILL,
``os._exit``): nothing of a lab outlives the test run.

Needs root, ``ip`` (iproute2) and ``unshare`` (util-linux); ``unavailable_reason()`` says, in one
line, why a lab cannot be built here.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

#: the private /16 the labs' /24 subnets are taken from
NETWORK_PREFIX = "10.213"
COMMAND_TIMEOUT_S = 20.0
#: how long ``close()`` waits for processes to end after SIGTERM before SIGKILL
TERM_GRACE_S = 5.0


class LabError(RuntimeError):
    """A lab could not be built or changed; the message is one line."""


def unavailable_reason() -> str | None:
    """Why a lab cannot be built on this machine (one line), or None when it can."""
    if os.geteuid() != 0:
        return f"network namespaces need root (running as uid {os.geteuid()})"
    for program, package in (("ip", "iproute2"), ("unshare", "util-linux")):
        if shutil.which(program) is None:
            return f"no {program!r} on PATH (Debian package {package})"
    probe = f"probe-{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", probe)
    except LabError as error:
        return f"cannot create a network namespace: {error}"
    try:
        _ip(
            "netns",
            "exec",
            probe,
            "unshare",
            "--uts",
            "sh",
            "-c",
            "printf probe > /proc/sys/kernel/hostname",
        )
    except LabError as error:
        return f"cannot give a namespace its own host name: {error}"
    finally:
        with contextlib.suppress(LabError):
            _ip("netns", "del", probe)
    return None


@dataclass(frozen=True)
class Host:
    """One namespace of a lab."""

    name: str
    #: the network namespace (``ip netns``)
    netns: str
    ip: str
    #: the bridge end of its link, in the root namespace (what ``cut`` sets down)
    veth: str


@dataclass
class Lab:
    """A bridge and namespaces; ``add_host()``, ``popen()``, ``cut()``, ``close()``."""

    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    hosts: dict[str, Host] = field(default_factory=dict)
    subnet: str = ""
    _closed: bool = False
    _built: bool = False
    _processes: list[subprocess.Popen[Any]] = field(default_factory=list)
    _watchdog: subprocess.Popen[str] | None = None

    @property
    def bridge(self) -> str:
        return f"fb{self.tag}"

    @property
    def netns_prefix(self) -> str:
        return f"lab-{self.tag}-"

    @property
    def gateway(self) -> str:
        """The root namespace's address on the bridge (where the test process talks from)."""
        return self._address(1)

    # ---- building -----------------------------------------------------------------------

    def start(self) -> Lab:
        """Create the bridge (and the watchdog); raises ``LabError`` (one line)."""
        if self._built:
            return self
        self.subnet = _free_subnet()
        self._start_watchdog()
        self._built = True
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
        except BaseException:
            self.close()
            raise
        return self

    def add_host(self, name: str) -> Host:
        """A new namespace joined to the bridge, with the next address of the subnet."""
        if not self._built:
            self.start()
        number = len(self.hosts) + 1
        host = Host(
            name=name,
            netns=f"{self.netns_prefix}{name}",
            ip=self._address(number + 1),
            veth=f"fb{self.tag}v{number}",
        )
        inside = f"fb{self.tag}p{number}"
        self.hosts[name] = host
        _ip("netns", "add", host.netns)
        _ip("link", "add", host.veth, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", host.netns)
        _ip("-n", host.netns, "link", "set", inside, "name", "eth0")
        _ip("-n", host.netns, "addr", "add", f"{host.ip}/24", "dev", "eth0")
        _ip("-n", host.netns, "link", "set", "eth0", "up")
        _ip("-n", host.netns, "link", "set", "lo", "up")
        _ip("link", "set", host.veth, "master", self.bridge)
        _ip("link", "set", host.veth, "up")
        return host

    # ---- using --------------------------------------------------------------------------

    def command(self, host: Host, argv: Sequence[str], *, hostname: str | None = None) -> list[str]:
        """``argv`` run in ``host``'s namespace; with ``hostname``, in a UTS namespace of its
        own named so (the program's pid stays the one of ``ip``: everything execs)."""
        prefix = ["ip", "netns", "exec", host.netns]
        if hostname is None:
            return [*prefix, *argv]
        # what ``hostname NAME`` does, without needing the hostname package
        script = 'printf %s "$0" > /proc/sys/kernel/hostname && exec "$@"'
        return [*prefix, "unshare", "--uts", "sh", "-c", script, hostname, *argv]

    def popen(
        self,
        host: Host,
        argv: Sequence[str],
        *,
        hostname: str | None = None,
        env: Mapping[str, str] | None = None,
        stdout: int | IO[Any] | None = subprocess.PIPE,
    ) -> subprocess.Popen[str]:
        """Start ``argv`` in ``host`` (its own session: signal it by its pid)."""
        process = subprocess.Popen(
            self.command(host, argv, hostname=hostname),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
        self._processes.append(process)
        return process

    def cut(self, host: Host) -> None:
        """Take ``host``'s link down at the bridge: nothing gets in or out."""
        _ip("link", "set", host.veth, "down")

    def restore(self, host: Host) -> None:
        _ip("link", "set", host.veth, "up")

    def restore_all(self) -> None:
        """Every host's link up again (before processes are ended, so that their connections
        can close). Never raises."""
        for host in self.hosts.values():
            with contextlib.suppress(LabError):
                self.restore(host)

    # ---- tearing down -------------------------------------------------------------------

    def close(self) -> None:
        """End every process in the lab, delete its namespaces and its bridge. Never raises."""
        if self._closed or not self._built:
            return
        self._closed = True
        try:
            _teardown(self.netns_prefix, self.bridge)
        finally:
            for process in self._processes:
                with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                    if process.poll() is None:
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)
                if process.stdout is not None:
                    with contextlib.suppress(OSError):
                        process.stdout.close()
            self._finish_watchdog()

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- internals ----------------------------------------------------------------------

    def _address(self, number: int) -> str:
        network = ipaddress.ip_network(self.subnet)
        return str(network.network_address + number)

    def _start_watchdog(self) -> None:
        self._watchdog = start_watchdog([__file__, "--watchdog", self.netns_prefix, self.bridge])

    def _finish_watchdog(self) -> None:
        watchdog, self._watchdog = self._watchdog, None
        finish_watchdog(watchdog)


def _ip(*args: str) -> str:
    try:
        done = subprocess.run(
            ["ip", *args],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise LabError(f"ip {' '.join(args)}: {error}") from None
    if done.returncode != 0:
        message = " | ".join(line for line in done.stderr.splitlines() if line.strip())
        raise LabError(f"ip {' '.join(args)}: {message or f'exit {done.returncode}'}")
    return done.stdout


def _free_subnet() -> str:
    """A /24 of ``NETWORK_PREFIX`` that no address or route of this machine uses."""
    used = _ip("-o", "-4", "addr") + _ip("-4", "route")
    taken = [
        ipaddress.ip_network(word, strict=False)
        for word in used.split()
        if word[:1].isdigit() and "/" in word
    ]
    for _attempt in range(64):
        candidate = ipaddress.ip_network(f"{NETWORK_PREFIX}.{secrets.randbelow(256)}.0/24")
        if not any(candidate.overlaps(net) for net in taken):
            return str(candidate)
    raise LabError(f"no free /24 in {NETWORK_PREFIX}.0.0/16")


def _teardown(netns_prefix: str, bridge: str) -> None:
    """Set the lab's links up, end the processes in every namespace named ``netns_prefix*``
    (TERM, then KILL), delete those namespaces, their links and the bridge. Never raises.
    (The watchdog runs it too.)

    Links go up first: a process ended behind a cut link leaves its connections retransmitting
    into the void, and they keep a deleted namespace (and its link) alive for minutes.
    """
    try:
        links = [
            line.split(":")[1].strip().split("@")[0] for line in _ip("-o", "link").splitlines()
        ]
    except (LabError, IndexError):
        links = []
    veths = [name for name in links if name.startswith(f"{bridge}v")]
    for veth in veths:
        with contextlib.suppress(LabError):
            _ip("link", "set", veth, "up")
    try:
        listing = _ip("netns", "list")
    except LabError:
        listing = ""
    names = [line.split()[0] for line in listing.splitlines() if line.startswith(netns_prefix)]
    pids: set[int] = set()
    for name in names:
        with contextlib.suppress(LabError):
            pids |= {int(p) for p in _ip("netns", "pids", name).split()}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (TERM_GRACE_S if sig == signal.SIGTERM else 5.0)
        while pids and time.monotonic() < deadline:
            pids = {pid for pid in pids if _alive(pid)}
            time.sleep(0.05)
        if not pids:
            break
    for name in names:
        with contextlib.suppress(LabError):
            _ip("netns", "del", name)
    for veth in veths:  # gone with their namespace, unless something still holds it
        with contextlib.suppress(LabError):
            _ip("link", "del", veth)
    with contextlib.suppress(LabError):
        _ip("link", "del", bridge)


def _alive(pid: int) -> bool:
    try:
        # a zombie child of ours is gone for this purpose
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


# ---- watchdogs: what a test set up outside its process is undone, even if it is killed ------


def start_watchdog(args: Sequence[str], **popen: Any) -> subprocess.Popen[str]:
    """``python -I args``: a watchdog that reads a pipe from this process. ``done`` on it
    (``finish_watchdog``) means all was cleaned up; end-of-file without it means this
    process died, and the watchdog cleans up itself. (``pg_cluster`` starts its own too.)"""
    return subprocess.Popen(
        [sys.executable, "-I", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # outlives a kill of the test run's process group
        **popen,
    )


def finish_watchdog(watchdog: subprocess.Popen[str] | None) -> None:
    """Tell a watchdog of ``start_watchdog`` that all was cleaned up, and wait for it to end."""
    if watchdog is None:
        return
    with contextlib.suppress(OSError, ValueError):
        assert watchdog.stdin is not None
        watchdog.stdin.write("done\n")
        watchdog.stdin.close()
    try:
        watchdog.wait(timeout=10)
    except subprocess.TimeoutExpired:
        watchdog.kill()
        watchdog.wait(timeout=10)


def _watchdog_main(netns_prefix: str, bridge: str) -> int:
    """The watchdog: waits on a pipe from the test process; end-of-file without ``done``
    means the test process died without closing the lab, so it tears the lab down itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.stdin.readline().strip() != "done":
        _teardown(netns_prefix, bridge)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--watchdog":
        sys.exit(_watchdog_main(sys.argv[2], sys.argv[3]))
    sys.exit("usage: netns.py --watchdog NETNS_PREFIX BRIDGE")
