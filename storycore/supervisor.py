"""Keeps the embedded studio's processes running.

Each process writes to its own file under the log folder; the terminal shows only
warnings and errors (or everything, when asked). A process that dies after start-up
is started again with backoff and reported; only one that cannot start at all
stops the studio. The processes' states are written to a status file that
`/health/` reads, so a restart is visible there too.

No Django here: the supervisor must keep working when the studio's own code cannot
even be imported.
"""

from __future__ import annotations

import collections
import enum
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

STOP_GRACE_SECONDS = 15.0
START_TIMEOUT_SECONDS = 90.0
# A restart waits 1, 2, 4 … seconds, at most this long; a process that then stays
# up for STABLE_AFTER_SECONDS is forgiven its past failures.
MAX_BACKOFF_SECONDS = 30.0
STABLE_AFTER_SECONDS = 60.0
LOG_MAX_BYTES = 20 * 1024 * 1024
TAIL_LINES = 200

_IMPORTANT = re.compile(rb"\b(WARNING|WARN|ERROR|CRITICAL|FATAL)\b|Error:|Warning:|^Traceback \(most recent")


class ProcessState(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    # Ready when this port accepts connections, or when a line of output matches `ready_line`.
    port: int | None = None
    ready_line: str | None = None
    # Extra environment, and warnings known to be harmless here (still written to the log).
    env: dict[str, str] = field(default_factory=dict)
    quiet: tuple[str, ...] = ()

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


class StartFailure(Exception):
    def __init__(self, name: str, reason: str, tail: list[str]) -> None:
        super().__init__(f"{name} {reason}")
        self.name = name
        self.reason = reason
        self.tail = tail


class Terminal:
    """What the person at the terminal sees: warnings and errors, held back during start-up so
    that the banner is the last thing printed, and nothing at all during shutdown."""

    def __init__(self, *, verbose: bool, out: IO[str] | None = None) -> None:
        self.verbose = verbose
        self._out = out or sys.stdout
        self._lock = threading.Lock()
        self._held: list[str] | None = []
        self._muted = False

    def say(self, text: str) -> None:
        with self._lock:
            self._out.write(text + "\n")
            self._out.flush()

    def process_line(self, name: str, line: str) -> None:
        with self._lock:
            if self._muted:
                return
            text = f"[{name}] {line}"
            if self._held is not None:
                self._held.append(text)
            else:
                self._out.write(text + "\n")
                self._out.flush()

    def release(self) -> None:
        """Print what was held back; from now on lines go straight out."""
        with self._lock:
            for text in self._held or []:
                self._out.write(text + "\n")
            self._held = None
            self._out.flush()

    def mute(self) -> None:
        with self._lock:
            self._muted = True


class _LineFilter:
    """Picks the lines worth a person's attention out of one process's output: warnings,
    errors, and every line of a traceback."""

    def __init__(self, quiet: tuple[str, ...] = ()) -> None:
        self._in_traceback = False
        self._quiet = [text.encode() for text in quiet]

    def wants(self, line: bytes) -> bool:
        if any(text in line for text in self._quiet):
            return False
        if self._in_traceback:
            # A traceback ends with its first unindented line after the header: the exception.
            if not line[:1].isspace():
                self._in_traceback = False
            return True
        if line.startswith(b"Traceback (most recent"):
            self._in_traceback = True
            return True
        return bool(_IMPORTANT.search(line))


@dataclass
class Supervised:
    spec: ProcessSpec
    log_path: Path
    state: ProcessState = ProcessState.STOPPED
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    restarts: int = 0
    failures_in_a_row: int = 0
    started_at: float | None = None
    ready: threading.Event = field(default_factory=threading.Event, repr=False)
    next_start_at: float | None = None
    last_exit_status: int | None = None
    last_exit_at: float | None = None
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=TAIL_LINES))


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _iso(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, UTC).isoformat() if timestamp is not None else None


class Supervisor:
    def __init__(
        self,
        *,
        cwd: Path,
        env: dict[str, str],
        log_dir: Path,
        status_path: Path,
        terminal: Terminal,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cwd = cwd
        self.env = env
        self.log_dir = log_dir
        self.status_path = status_path
        self.terminal = terminal
        self.clock = clock
        self.children: list[Supervised] = []
        self.stopping = False
        self._lock = threading.Lock()
        log_dir.mkdir(parents=True, exist_ok=True)
        status_path.parent.mkdir(parents=True, exist_ok=True)

    # --- start-up ---------------------------------------------------------------------

    def start_all(self, specs: Iterable[ProcessSpec]) -> None:
        """Start each process in order and wait until it is ready; raise StartFailure otherwise."""
        for spec in specs:
            child = Supervised(spec=spec, log_path=self.log_dir / f"{spec.slug}.log")
            _rotate(child.log_path)
            self.children.append(child)
            self.terminal.say(f"  starting {spec.name} …")
            self._spawn(child)
            self._wait_ready(child)
        self.write_status()

    def _spawn(self, child: Supervised) -> None:
        child.ready.clear()
        child.state = ProcessState.STARTING
        child.started_at = time.time()
        # Own session: Ctrl-C reaches only the supervisor, which stops each child in order,
        # and a child's leftovers (a Celery pool) can be killed as one group after it dies.
        child.process = subprocess.Popen(  # noqa: S603 (argv built by the studio itself)
            child.spec.argv,
            cwd=self.cwd,
            env=self.env | child.spec.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        threading.Thread(
            target=self._pump, args=(child, child.process), name=f"log {child.spec.slug}", daemon=True
        ).start()
        if child.spec.port is not None:
            threading.Thread(
                target=self._watch_port,
                args=(child, child.process),
                name=f"port {child.spec.slug}",
                daemon=True,
            ).start()
        elif child.spec.ready_line is None:
            child.ready.set()

    def _wait_ready(self, child: Supervised) -> None:
        deadline = self.clock() + START_TIMEOUT_SECONDS
        while not child.ready.wait(0.1):
            assert child.process is not None
            code = child.process.poll()
            if code is not None:
                time.sleep(0.3)  # let the pump write the last lines
                raise StartFailure(
                    child.spec.name, f"exited with status {code} while starting", list(child.tail)
                )
            if self.clock() > deadline:
                raise StartFailure(
                    child.spec.name, f"was not ready after {START_TIMEOUT_SECONDS:.0f} s", list(child.tail)
                )
        child.state = ProcessState.RUNNING

    def _watch_port(self, child: Supervised, process: subprocess.Popen[bytes]) -> None:
        assert child.spec.port is not None
        while process.poll() is None and not self.stopping:
            if _port_open(child.spec.port):
                child.ready.set()
                return
            time.sleep(0.1)

    def _pump(self, child: Supervised, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        ready = re.compile(child.spec.ready_line.encode()) if child.spec.ready_line else None
        line_filter = _LineFilter(child.spec.quiet)
        log = open(child.log_path, "ab")
        try:
            for line in iter(process.stdout.readline, b""):
                log.write(line)
                log.flush()
                if log.tell() > LOG_MAX_BYTES:
                    log.close()
                    _rotate(child.log_path)
                    log = open(child.log_path, "ab")
                text = line.rstrip(b"\r\n").decode("utf-8", "replace")
                child.tail.append(text)
                if ready is not None and ready.search(line):
                    child.ready.set()
                if line_filter.wants(line) or self.terminal.verbose:
                    self.terminal.process_line(child.spec.name, text)
        finally:
            log.close()

    # --- running ------------------------------------------------------------------------

    def watch(self, until: threading.Event) -> None:
        """Keep every process running until `until` is set."""
        while not until.wait(0.2):
            self.tend()

    def tend(self) -> None:
        """One round of supervision: notice exits, start what is due, mark what became ready."""
        changed = False
        now = self.clock()
        for child in self.children:
            if child.state == ProcessState.STARTING and child.ready.is_set():
                child.state = ProcessState.RUNNING
                self.terminal.say(f"{child.spec.name} is running again.")
                changed = True
            if child.state in (ProcessState.STARTING, ProcessState.RUNNING):
                assert child.process is not None
                code = child.process.poll()
                if code is not None:
                    self._on_exit(child, code)
                    changed = True
                elif (
                    child.failures_in_a_row
                    and child.state == ProcessState.RUNNING
                    and child.started_at is not None
                    and time.time() - child.started_at > STABLE_AFTER_SECONDS
                ):
                    child.failures_in_a_row = 0
            elif child.state == ProcessState.RESTARTING and child.next_start_at is not None:
                if now >= child.next_start_at:
                    child.restarts += 1
                    child.next_start_at = None
                    try:
                        self._spawn(child)
                    except OSError as exc:
                        self._on_exit(child, -1, reason=str(exc))
                    changed = True
        if changed:
            self.write_status()

    def _on_exit(self, child: Supervised, code: int, reason: str | None = None) -> None:
        assert child.process is not None
        _kill_group(child.process.pid, signal.SIGKILL)  # leftovers of the dead process, e.g. a Celery pool
        child.last_exit_status = code
        child.last_exit_at = time.time()
        child.failures_in_a_row += 1
        delay = min(MAX_BACKOFF_SECONDS, 2.0 ** (child.failures_in_a_row - 1))
        child.state = ProcessState.RESTARTING
        child.next_start_at = self.clock() + delay
        self.terminal.say(
            f"{child.spec.name} {reason or _describe_exit(code)}; restarting it in {delay:.0f} s "
            f"(log: {child.log_path})."
        )

    def write_status(self) -> None:
        with self._lock:
            body = {
                "supervisor_pid": os.getpid(),
                "updated_at": datetime.now(UTC).isoformat(),
                "processes": [
                    {
                        "name": child.spec.name,
                        "state": child.state.value,
                        "pid": child.process.pid if child.process is not None else None,
                        "restarts": child.restarts,
                        "started_at": _iso(child.started_at),
                        "last_exit_status": child.last_exit_status,
                        "last_exit_at": _iso(child.last_exit_at),
                        "log": child.log_path.name,
                    }
                    for child in self.children
                ],
            }
            temporary = self.status_path.with_suffix(".tmp")
            temporary.write_text(json.dumps(body, indent=2))
            os.replace(temporary, self.status_path)

    # --- shutdown -----------------------------------------------------------------------

    def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.terminal.mute()
        live = [c for c in reversed(self.children) if c.process is not None and c.process.poll() is None]
        for child in live:
            assert child.process is not None
            _kill_group(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in live:
            assert child.process is not None
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.terminal.say(
                    f"  {child.spec.name} did not stop in {STOP_GRACE_SECONDS:.0f} s; killing it"
                )
                _kill_group(child.process.pid, signal.SIGKILL)
                child.process.wait()
        for child in self.children:
            if child.process is not None:
                _kill_group(child.process.pid, signal.SIGKILL)  # nothing of the group outlives the studio
            child.state = ProcessState.STOPPED
        self.status_path.unlink(missing_ok=True)

    def child(self, name: str) -> Supervised:
        return next(c for c in self.children if c.spec.name == name)


def _kill_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _rotate(path: Path) -> None:
    """Keep the previous run's log as `<name>.log.1`."""
    if path.exists() and path.stat().st_size > 0:
        os.replace(path, path.with_name(path.name + ".1"))


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def read_status(path: Path) -> dict | None:
    """The supervisor's last status, or None when no supervisor is running this studio."""
    try:
        body = json.loads(path.read_text())
        os.kill(int(body["supervisor_pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return body if isinstance(body, dict) else None
