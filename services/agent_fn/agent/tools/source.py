"""Turns what the user named (a git URL or a local path) into a local directory to analyse."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .child_env import minimal_env
from .errors import ToolError

# scp-like `git@host:owner/repo.git` or a URL with a scheme git can clone from.
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!//)\S+$")
# Not file://: a "URL" that reads this machine's disk is a local path by another name, and
# local paths have rules of their own (resolve_local).
_URL = re.compile(r"^(https?|ssh|git)://\S+$", re.IGNORECASE)
_NAME_CHARS = re.compile(r"[^a-z0-9-]+")
_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")
# `github.com/owner/repo` typed without a scheme.
_BARE_HOSTED = re.compile(r"^(?:github\.com|gitlab\.com|bitbucket\.org)/[\w.-]+/[\w.-]+/?$")

# Only these transports: `ext::` and friends would run a command named in the URL.
_ALLOWED_PROTOCOLS = "git:http:https:ssh"


@dataclass(frozen=True)
class ResolvedSource:
    path: Path
    name: str
    commit: str | None  # HEAD for a clone
    cloned: bool


def is_git_url(source: str) -> bool:
    return bool(_URL.match(source) or _SCP_LIKE.match(source))


def redact(text: str) -> str:
    """Hide a token or password written into a URL (`https://user:token@host/...`)."""
    return _CREDENTIALS.sub("***@", text)


def app_name(source: str) -> str:
    """A slug for the app from the last part of its URL or path: `My_App.git` -> `my-app`."""
    last = re.split(r"[/:]", source.rstrip("/"))[-1]
    last = last.removesuffix(".git")
    slug = _NAME_CHARS.sub("-", last.lower()).strip("-")
    if not slug or not slug[0].isalpha():
        slug = f"app-{slug}" if slug else "app"
    return slug[:40].rstrip("-")


def resolve_source(
    source: str,
    *,
    workdir: Path,
    clone_timeout_s: float,
    max_repo_bytes: int,
    local_root: Path | None = None,
) -> ResolvedSource:
    """A clone of a git URL under `workdir`, or a local folder inside `local_root`.

    `local_root` None: local folders are turned off, and only git URLs are accepted.
    """
    source = source.strip()
    if not source:
        raise ToolError("No repository given: name a git URL or a local directory.")
    if source.lower().startswith("file:"):
        raise ToolError(
            f"{source} is not a git URL I can clone: give me an https://, ssh:// or git@ URL."
        )
    if is_git_url(source):
        return _clone(source, workdir, clone_timeout_s, max_repo_bytes)
    if _BARE_HOSTED.match(source) and (local_root is None or not (local_root / source).exists()):
        return _clone(f"https://{source}", workdir, clone_timeout_s, max_repo_bytes)
    if local_root is None:
        raise ToolError(
            f"{source} is not a git URL, and local folders are turned off here: give me a git "
            "URL (https://…, ssh://… or git@…)."
        )
    path = resolve_local(source, local_root)
    return ResolvedSource(path=path, name=app_name(str(path)), commit=None, cloned=False)


def resolve_local(source: str, root: Path) -> Path:
    """`source` as a folder inside `root`; `..`, `~` and symlinks that lead out are refused."""
    root = root.resolve()
    raw = Path(source)
    if source.startswith("~"):
        raise ToolError(f"{source} is outside the workspace: I only read folders inside {root}.")
    # realpath follows every symlink, so a link inside the workspace that points out of it
    # is caught here like a `../`.
    path = Path(os.path.realpath(raw if raw.is_absolute() else root / raw))
    if not path.is_relative_to(root):
        raise ToolError(f"{source} is outside the workspace: I only read folders inside {root}.")
    if not path.exists():
        raise ToolError(f"There is no directory {source!r} on this machine.")
    if not path.is_dir():
        raise ToolError(f"{source!r} is a file, not a directory: name the app's directory.")
    return path


def subfolder_of(root: Path, subfolder: str | None) -> tuple[Path, str | None]:
    """The app's folder inside a source, and the subfolder normalised (posix, no `./`)."""
    if subfolder is None or subfolder.strip().strip("/") in ("", "."):
        return root, None
    text = subfolder.strip().replace("\\", "/").strip("/").removeprefix("./")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if not parts or ".." in parts or text.startswith("~"):
        raise ToolError(f"The subfolder {subfolder!r} must be a folder inside the repository.")
    path = Path(os.path.realpath(root.joinpath(*parts)))
    if not path.is_relative_to(root.resolve()):
        raise ToolError(f"The subfolder {subfolder!r} leads outside the repository.")
    if not path.is_dir():
        raise ToolError(f"There is no folder {'/'.join(parts)!r} in {root.name}.")
    return path, "/".join(parts)


def _clone(url: str, workdir: Path, timeout_s: float, max_bytes: int) -> ResolvedSource:
    name = app_name(url)
    workdir.mkdir(parents=True, exist_ok=True)
    dest = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir)) / "repo"
    # No secret of the agent's reaches git, its helpers or a credential manager.
    env = minimal_env()
    env.pop("GIT_ASKPASS", None)
    env |= {
        "GIT_TERMINAL_PROMPT": "0",  # never wait for a password nobody will type
        "GCM_INTERACTIVE": "never",
        "GIT_ASKPASS": "true",
        "SSH_ASKPASS": "true",
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
        "GIT_ALLOW_PROTOCOL": _ALLOWED_PROTOCOLS,
        "GIT_LFS_SKIP_SMUDGE": "1",  # LFS objects are data, not what the analysis needs
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    argv = [
        "git",
        # Symlinks become plain files holding the link text: nothing in the clone can point
        # outside it. Hooks cannot come with a clone, and submodules are not fetched.
        "-c",
        "core.symlinks=false",
        "-c",
        "advice.detachedHead=false",
        "clone",
        "--depth",
        "1",
        "--single-branch",
        "--no-tags",
        "--quiet",
        "--",  # a URL starting with `-` must not be read as an option
        url,
        str(dest),
    ]
    log_path = dest.parent / "clone.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
        )
        failure = _watch_clone(proc, dest, timeout_s, max_bytes)
    if failure is not None:
        shutil.rmtree(dest.parent, ignore_errors=True)
        raise failure
    if proc.returncode != 0:
        detail = _git_reason(log_path.read_text(errors="replace"))
        shutil.rmtree(dest.parent, ignore_errors=True)
        # Permanent, even when the network is to blame: the user can check the URL or try
        # again in a moment, and a retried turn would only repeat the same failure slowly.
        raise ToolError(
            redact(
                f"Could not clone {url}: {detail or f'git exited with {proc.returncode}'}. "
                "Check the URL, and that the repository is public (or reachable from here)."
            )
        )
    return ResolvedSource(path=dest, name=name, commit=_head(dest), cloned=True)


def _git_reason(log: str) -> str:
    """git's own last word, one line: `fatal: repository '…' not found` -> that, shortened."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    fatal = [line for line in lines if line.lower().startswith(("fatal:", "error:"))]
    reason = (fatal or lines or [""])[-1]
    for prefix in ("fatal: ", "error: "):
        reason = reason.removeprefix(prefix)
    reason = reason.rstrip(".")
    return reason if len(reason) <= 200 else reason[:199] + "…"


def _watch_clone(
    proc: subprocess.Popen[bytes], dest: Path, timeout_s: float, max_bytes: int
) -> Exception | None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            proc.wait(timeout=0.25)
            break
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() > deadline:
            _kill_group(proc)
            return ToolError(
                f"Cloning took longer than {timeout_s:g} s, so I stopped it. Is the repository "
                "very large, or the host slow? You can also point me at a local copy."
            )
        if _tree_size(dest, max_bytes) > max_bytes:
            _kill_group(proc)
            return ToolError(
                f"The repository is larger than {max_bytes // 1_000_000} MB, more than I "
                "analyse. Point me at a smaller repository or a local copy of the app."
            )
    if proc.returncode == 0 and _tree_size(dest, max_bytes) > max_bytes:
        return ToolError(
            f"The repository is larger than {max_bytes // 1_000_000} MB, more than I analyse."
        )
    return None


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    # git runs helpers (remote-https, index-pack) as children: end the whole group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _tree_size(root: Path, stop_above: int) -> int:
    total = 0
    stack = [root]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                else:
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
            if total > stop_above:
                return total
    return total


def _head(repo: Path) -> str | None:
    # Safe to run git here: this clone's config is the one we wrote, not the repository's.
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            env=minimal_env({"GIT_CONFIG_NOSYSTEM": "1"}),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
