"""``orchestrator serve --workers N``: N gateway processes on one port, under a small supervisor.

Owns ``supervise``: the supervisor reserves the address (a socket bound with ``SO_REUSEPORT`` but not
listening, so ``--port 0`` gets one real port that every worker shares), forks the workers, and each one
serves its own gateway on a socket bound with ``SO_REUSEPORT``: the kernel spreads new connections over
the listening sockets, and no process hands connections to another (docs/decisions.md says why this
and not one inherited socket). The first worker starts alone, so a broken config fails once with its own
message and exit code (with auth on it also opens and migrates the ledger first, for its virtual keys);
the rest start together, and the ledger is safe with several processes opening it at once anyway.

The supervisor does no I/O of its own besides signals and a readiness pipe (each worker writes a line
once it listens): it announces the URL when every worker is ready, restarts a worker that dies (after a
short pause when it died young, so a crash loop does not spin), and on SIGTERM or SIGINT forwards SIGTERM
to every worker, which finish their requests in flight and flush their ledgers, then exits 0. A worker
still alive ``shutdown_timeout`` plus a grace period after that is killed. Not deciding whether N
processes may share state (``cli/serve.py`` refuses in-memory state unless told).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import FrameType

from model_orchestrator.core.errors import ConfigError, OrchestratorError
from model_orchestrator.gateway.settings import GatewaySettings

# A worker dying sooner than this after it started is restarted after the same pause (a crash loop).
_YOUNG = 1.0
# Beyond shutdown_timeout, how long a stopping worker gets (closing the ledger, telemetry) before SIGKILL.
_STOP_GRACE = 10.0
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>

Work = Callable[[GatewaySettings, Callable[[str], None]], None]
"""What a worker runs: serve ``settings`` until signalled, calling ``ready(url)`` once listening."""


@dataclass
class _Pool:
    """The supervisor's view of its workers."""

    size: int
    started_at: dict[int, float] = field(default_factory=dict)
    ready: set[int] = field(default_factory=set)
    restart_at: list[float] = field(default_factory=list)
    announced: bool = False
    stopping_since: float | None = None


def supervise(count: int, settings: GatewaySettings, work: Work, *, announce: Callable[[str], None]) -> int:
    """Serve ``settings`` from ``count`` worker processes until SIGTERM/SIGINT; the exit code.

    ``ConfigError`` when the address cannot be bound. A worker that fails before it is ready (a broken
    config, a ledger that cannot be opened) stops the rest, and its exit code is returned.
    """
    reservation = _reserve(settings.host, settings.port)
    shared = replace(settings, port=reservation.getsockname()[1], reuse_port=True)
    wake_r, wake_w = _pipe()
    ready_r, ready_w = _pipe()
    received: list[int] = []
    previous = {signum: signal.signal(signum, lambda n, _f: received.append(n)) for signum in _STOP_SIGNALS}
    previous_chld = signal.signal(signal.SIGCHLD, _nothing)
    previous_wakeup = signal.set_wakeup_fd(wake_w)
    inherited = (reservation.fileno(), wake_r, wake_w, ready_r)
    pool = _Pool(count)
    try:
        spawn = _Spawner(shared, work, ready_w, inherited)
        pool.started_at[spawn()] = time.monotonic()
        return _loop(pool, spawn, received, wake_r, ready_r, shared, announce)
    finally:
        signal.set_wakeup_fd(previous_wakeup)
        signal.signal(signal.SIGCHLD, previous_chld)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for fd in (wake_r, wake_w, ready_r, ready_w):
            os.close(fd)
        reservation.close()


@dataclass(frozen=True)
class _Spawner:
    """Forks one worker: it drops the supervisor's signal set-up and descriptors, then runs ``work``."""

    settings: GatewaySettings
    work: Work
    ready_fd: int
    inherited: tuple[int, ...]

    def __call__(self) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        supervisor = os.getpid()
        pid = os.fork()
        if pid:
            return pid
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for signum in (*_STOP_SIGNALS, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            _stop_with(supervisor)
            for fd in self.inherited:
                os.close(fd)
            code = _run_worker(self.settings, self.work, self.ready_fd)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)  # never return into the supervisor's stack


def _stop_with(supervisor: int) -> None:
    """Have the kernel send this worker SIGTERM when the supervisor dies, even by SIGKILL, so no worker
    keeps serving the port unsupervised (Linux's ``PR_SET_PDEATHSIG``; elsewhere they outlive it)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != supervisor:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _run_worker(settings: GatewaySettings, work: Work, ready_fd: int) -> int:
    """Run ``work`` and map its outcome to an exit code, as the CLI would (one line, no traceback)."""

    def ready(_url: str) -> None:
        os.write(ready_fd, f"{os.getpid()}\n".encode())

    try:
        work(settings, ready)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OrchestratorError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # noqa: BLE001 - a worker's last word, then the supervisor decides
        print(f"error: gateway worker {os.getpid()} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def _loop(
    pool: _Pool,
    spawn: _Spawner,
    received: list[int],
    wake_r: int,
    ready_r: int,
    settings: GatewaySettings,
    announce: Callable[[str], None],
) -> int:
    selector = selectors.DefaultSelector()
    selector.register(wake_r, selectors.EVENT_READ)
    selector.register(ready_r, selectors.EVENT_READ)
    url = _url(settings)
    with selector:
        while True:
            selector.select(_timeout(pool))
            _drain(wake_r)
            for pid in _read_ready(ready_r):
                pool.ready.add(pid)
            if received and pool.stopping_since is None:
                _stop_all(pool, signal.SIGTERM)
            code = _reap(pool)
            if code is not None:
                return code
            if pool.stopping_since is None:
                _start_due(pool, spawn)
                if not pool.announced and len(pool.ready) == pool.size:
                    pool.announced = True
                    announce(url)
            elif time.monotonic() - pool.stopping_since > settings.shutdown_timeout + _STOP_GRACE:
                _stop_all(pool, signal.SIGKILL)


def _timeout(pool: _Pool) -> float | None:
    if pool.stopping_since is not None:
        return 0.5
    if pool.restart_at:
        return max(0.0, min(pool.restart_at) - time.monotonic())
    return None


def _start_due(pool: _Pool, spawn: _Spawner) -> None:
    """Start the rest of the pool once the first worker is ready, and any restart that is due."""
    if len(pool.started_at) == 1 and pool.ready and not pool.announced:
        pool.restart_at.extend([0.0] * (pool.size - 1))
    now = time.monotonic()
    due = [at for at in pool.restart_at if at <= now]
    pool.restart_at = [at for at in pool.restart_at if at > now]
    for _ in due:
        pool.started_at[spawn()] = time.monotonic()


def _reap(pool: _Pool) -> int | None:
    """Collect dead workers; the supervisor's exit code once it should exit, else None."""
    while pool.started_at:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            break
        started = pool.started_at.pop(pid, None)
        if started is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        if pool.stopping_since is not None:
            continue
        if not pool.announced:  # failed while the pool was starting: stop, with its exit code
            _stop_all(pool, signal.SIGTERM)
            return _finish(pool, code if code > 0 else 1)
        young = time.monotonic() - started < _YOUNG
        # On stderr like the announcement, whatever logging is set to: an operator must see a crash.
        message = f"gateway worker {pid} exited ({_describe(code)}); starting another"
        print(message, file=sys.stderr, flush=True)
        pool.ready.discard(pid)
        pool.restart_at.append(time.monotonic() + (_YOUNG if young else 0.0))
    if pool.stopping_since is not None and not pool.started_at:
        return 0
    return None


def _finish(pool: _Pool, code: int) -> int:
    """Wait for the stopped workers, then return ``code``."""
    deadline = time.monotonic() + _STOP_GRACE
    while pool.started_at and time.monotonic() < deadline:
        pid, _ = os.waitpid(-1, os.WNOHANG)
        if pid:
            pool.started_at.pop(pid, None)
        else:
            time.sleep(0.05)
    _stop_all(pool, signal.SIGKILL)
    return code


def _stop_all(pool: _Pool, signum: int) -> None:
    if pool.stopping_since is None:
        pool.stopping_since = time.monotonic()
    pool.restart_at.clear()
    for pid in pool.started_at:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _describe(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _reserve(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``/``port`` with ``SO_REUSEPORT``, not listening: it fixes the port and
    proves it can be bound, and receives no connections itself."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host} port {port}: {exc}; pick another --host") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host} port {port}: {exc.strerror or exc}; pick another --host or --port"
        ) from None
    return sock


def _url(settings: GatewaySettings) -> str:
    host = settings.host
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.port}"


def _pipe() -> tuple[int, int]:
    read, write = os.pipe()
    os.set_blocking(read, False)
    os.set_blocking(write, False)
    return read, write


def _drain(fd: int) -> bytes:
    chunks = []
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
    return b"".join(chunks)


def _read_ready(fd: int) -> list[int]:
    return [int(line) for line in _drain(fd).split() if line.isdigit()]


def _nothing(_signum: int, _frame: FrameType | None) -> None:
    """SIGCHLD only needs to wake the selector (through the wakeup fd)."""
