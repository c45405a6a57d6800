"""Small helpers for the local services: background processes with kept logs, free ports, polling."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
S = TypeVar("S", bound="StateFile")
L = TypeVar("L", bound="LocalService")


class StateFile:
    """A dataclass saved as JSON, so another process (``... down``) can find what one started."""

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))  # type: ignore[call-overload]

    @classmethod
    def load(cls: type[S], path: Path) -> S:
        return cls(**json.loads(path.read_text()))


class ServiceError(RuntimeError):
    """A local service failed to start; the message says what to do and where the logs are."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free ports (all sockets held open until every port is chosen)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in sockets:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.2,
    what: str,
    abort: Callable[[], str | None] | None = None,
) -> T:
    """Call ``probe`` until it returns a truthy value or ``timeout`` seconds pass.

    ``abort`` is checked between probes; when it returns a message, waiting stops with that message
    (e.g. the process being waited on has exited).
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except Exception as exc:  # probes talk to services that may not be up yet
            last_error = exc
        if abort is not None and (reason := abort()):
            raise ServiceError(reason)
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise ServiceError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


class LocalService:
    """A local service (control plane, Ray head) owning processes and a state file in ``workdir``."""

    workdir: Path
    state: StateFile | None

    def start(self) -> StateFile:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    @property
    def state_file(self) -> Path:
        return self.workdir / "state.json"

    def forget_state(self) -> None:
        self.state_file.unlink(missing_ok=True)

    def __enter__(self: L) -> L:
        if self.state is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass
class ManagedProcess:
    """A child process in its own session, its output appended to ``log``."""

    name: str
    args: Sequence[str]
    log: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as fh:
            fh.write(f"\n==> {' '.join(self.args)}\n".encode())
            self.proc = subprocess.Popen(
                list(self.args),
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def death_notice(self) -> str | None:
        """A message when the process has exited, for ``wait_until(abort=...)``."""
        code = self.exited()
        if code is None:
            return None
        return f"{self.name} exited with code {code}; log: {self.log}\n{self.log_tail()}"

    def stop(self, grace: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        stop_process_group(self.proc.pid, grace)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace)


def stop_process_group(pid: int, grace: float = 10.0) -> None:
    """SIGTERM the process group led by ``pid``, then SIGKILL it after ``grace`` seconds."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            break
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still "exists"; reap it if it is ours
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def runs_program(pid: int, program: str) -> bool:
    """True when ``pid`` is alive and runs ``program`` (its file name contains it): a pid saved in a state file
    by an earlier session may belong to an unrelated process by now."""
    if not pid or not pid_alive(pid):
        return False
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return False
    return program in Path(argv0).name
