"""What the operations of `python -m stacks` (promote, rollback, recover, drift) share: how
they run the pulumi CLI (`Runner`, `SubprocessRunner`), how they write a stack file
(`write_atomic`) and check its text (`validate_text`), and the usage error they raise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from stacks.config import ConfigError, Problem
from stacks.files import load_spec_file, stack_file


class UsageError(Exception):
    """A bad argument (e.g. an --only selector that matches nothing promotable): exit 2."""


ENGINE_HINT = (
    "the Pulumi CLI (pulumi) is not on PATH: run `make engine` to build it, then "
    'source "$(scripts/engine.sh --print-dir)/env.sh" (or install pulumi yourself)'
)


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str = ""
    stderr: str = ""


class Runner(Protocol):
    def which(self, program: str) -> str | None: ...

    def run(self, args: Sequence[str], *, capture: bool) -> Result:
        """Run a command in the project root; `capture=False` streams its output to the terminal."""
        ...

    def git_head(self) -> str | None: ...

    def confirm(self, prompt: str) -> bool | None:
        """The user's answer, or None when there is no terminal to ask."""
        ...


class SubprocessRunner:
    def __init__(self, root: Path) -> None:
        self.root = root

    def which(self, program: str) -> str | None:
        return shutil.which(program)

    def run(self, args: Sequence[str], *, capture: bool) -> Result:
        # stdin closed: the confirmation prompt is ours; pulumi's interactive display
        # would otherwise read (and swallow) what the user types ahead
        proc = subprocess.run(
            list(args), cwd=self.root, capture_output=capture, text=True, check=False, stdin=subprocess.DEVNULL
        )
        return Result(proc.returncode, proc.stdout or "", proc.stderr or "")

    def git_head(self) -> str | None:
        try:
            proc = subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=self.root, capture_output=True, text=True, check=False
            )
        except OSError:
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    def confirm(self, prompt: str) -> bool | None:
        if not sys.stdin.isatty():
            return None
        try:
            import termios

            # an answer typed before the preview finished was not an answer to this question
            termios.tcflush(sys.stdin, termios.TCIFLUSH)
        except (ImportError, OSError):
            pass
        try:
            answer = input(prompt)
        except EOFError:
            return None
        return answer.strip().lower() in ("y", "yes")


def cli_problem(stack: str, root: Path, runner: Runner) -> str | None:
    """Why a command that drives the pulumi CLI on `stack` cannot start, if it cannot."""
    path = stack_file(stack, root)
    if not path.is_file():
        return f"{path.name}: no such stack file"
    if runner.which("pulumi") is None:
        return ENGINE_HINT
    return None


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["(no output)"])[0]


def validate_text(text: str, label: str, root: Path) -> list[Problem]:
    """Problems `parse_config` finds in a stack file's text (as `validate` would report them)."""
    fd, tmp = tempfile.mkstemp(prefix="promote-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        load_spec_file(Path(tmp), root)
    except ConfigError as exc:
        return [Problem(p.path.replace(tmp, label), p.message) for p in exc.problems]
    finally:
        os.unlink(tmp)
    return []


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` in one step, so a reader never sees half a stack file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
