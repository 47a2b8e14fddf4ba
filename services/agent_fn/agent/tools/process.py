"""Child processes for deployments: run a step to completion, or start one that outlives us.

Every child gets its own session (process group), so ending it ends whatever it started too
(pip's build backends, npm's install scripts, a server's workers).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .errors import Cancelled, ToolError

LOG_TAIL_CHARS = 1500


def run_step(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    log_path: Path,
    should_cancel: Callable[[], bool],
    timeout_s: float,
    what: str,
    on_tick: Callable[[float], None] | None = None,
    poll_s: float = 0.2,
) -> None:
    """Run `argv` to the end, its output appended to `log_path`; ToolError if it fails."""
    if should_cancel():
        raise Cancelled(f"cancelled before {what}")
    with open(log_path, "ab") as log:
        log.write(f"\n$ {' '.join(argv)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise ToolError(f"Could not start {what}: {exc}") from exc
    started = time.monotonic()
    try:
        while True:
            # Checked before each wait, so a cancel that is already pending never lets the
            # step run on.
            if should_cancel():
                raise Cancelled(f"cancelled during {what}")
            try:
                proc.wait(timeout=poll_s)
                break
            except subprocess.TimeoutExpired:
                pass
            elapsed = time.monotonic() - started
            if elapsed > timeout_s:
                raise ToolError(
                    f"{what[:1].upper()}{what[1:]} took longer than {timeout_s:g} s, so I "
                    f"stopped it.\n{log_tail(log_path)}"
                )
            if on_tick is not None:
                on_tick(elapsed)
    except BaseException:
        kill_group(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        raise
    if proc.returncode != 0:
        raise ToolError(
            f"{what[:1].upper()}{what[1:]} failed (exit code {proc.returncode}).\n"
            f"{log_tail(log_path)}"
        )


def kill_group(pid: int, *, grace_s: float = 3.0) -> bool:
    """SIGTERM the process group led by `pid`, SIGKILL it after `grace_s`. False if gone."""
    try:
        target = os.getpgid(pid)
    except ProcessLookupError:
        return False
    # Only a group this process leads: never signal the group of someone else's process.
    group = target == pid
    try:
        (os.killpg if group else os.kill)(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        (os.killpg if group else os.kill)(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def _alive(pid: int) -> bool:
    # Reap it first if it is our child, or a finished child stays a zombie that looks alive.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0:1] == ["Z"]


def log_tail(path: Path, max_chars: int = LOG_TAIL_CHARS) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_chars))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    if size > max_chars:
        text = "…" + text.split("\n", 1)[-1]
    return f"Last lines of {path.name}:\n```\n{text.strip()}\n```"
