"""Where a signed-in user's refresh token is kept: one file in the user's config folder.

$XDG_CONFIG_HOME/deploychat/credentials.json (else ~/.config/deploychat/), one entry per edge,
keyed by the edge's http(s) origin. The file holds secrets, so it is only ever created mode 0600
(a private temporary file, renamed over the old one) inside a folder made 0700: it is never
readable by others, not even for an instant.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FILE_NAME = "credentials.json"


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or ""
    # The XDG spec: a relative XDG_CONFIG_HOME is invalid and ignored.
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".config"
    return root / "deploychat"


@dataclass(frozen=True)
class StoredLogin:
    refresh_token: str
    uid: str
    provider: str  # "anonymous", "password" or "google.com"
    email: str | None = None
    # The Identity Toolkit endpoints this token belongs to (the emulator's, locally).
    api_key: str = ""
    emulator_url: str | None = None
    # The last ID token, so that each run need not refresh it while it is fresh.
    id_token: str | None = None
    expires_at: float = 0.0

    @property
    def is_guest(self) -> bool:
        return self.provider == "anonymous"


class CredentialStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_dir() / FILE_NAME

    def get(self, edge: str) -> StoredLogin | None:
        raw = self._load().get(edge)
        if not isinstance(raw, dict):
            return None
        try:
            return StoredLogin(**{k: v for k, v in raw.items() if k in _FIELDS})
        except TypeError as exc:
            log.warning("ignoring an unreadable sign-in for %s in %s: %s", edge, self.path, exc)
            return None

    def put(self, edge: str, login: StoredLogin) -> None:
        data = self._load()
        data[edge] = asdict(login)
        self._write(data)

    def remove(self, edge: str) -> bool:
        data = self._load()
        if data.pop(edge, None) is None:
            return False
        self._write(data)
        return True

    def _load(self) -> dict[str, Any]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable credentials file %s: %s", self.path, exc)
            return {}
        edges = raw.get("edges") if isinstance(raw, dict) else None
        return dict(edges) if isinstance(edges, dict) else {}

    def _write(self, edges: dict[str, Any]) -> None:
        folder = self.path.parent
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkstemp creates the file O_EXCL with mode 0600 whatever the umask; the rename then
        # swaps it in whole, so a reader sees the old file or the new one, never half of one.
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=folder)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({"edges": edges}, out, indent=2)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


_FIELDS = frozenset(StoredLogin.__dataclass_fields__)
