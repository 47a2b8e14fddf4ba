"""Per-user limits that hold across sockets, reconnects and edge instances: kept in Firestore.

Counted limits (turns and cancels per minute, new sessions per hour) use one document per user,
kind and fixed window: `users/{uid}/limits/{kind}-{window}`, holding the keys counted in it. A
key already counted (a chat resent after a lost ack) is not counted again, so at-least-once
resends never use up a user's allowance. The check and the write that the counted frame causes
happen in one transaction (see SessionStore), so nothing is stored for a refused frame.

Open sockets are records `users/{uid}/sockets/{id}` with a lease, renewed (all of a process's
together) while the socket lives and deleted when it closes; an instance that dies leaves
records that simply expire.
"""

from __future__ import annotations

import datetime
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from google.cloud import firestore

log = logging.getLogger(__name__)

Kind = Literal["turns", "cancels", "sessions"]

USERS = "users"
LIMITS = "limits"
SOCKETS = "sockets"


@dataclass(frozen=True)
class Window:
    kind: Kind
    limit: int
    seconds: float


class RateLimited(Exception):
    def __init__(self, what: str, retry_after_s: float) -> None:
        super().__init__(what)
        self.what = what
        self.retry_s = retry_after_s


def user_ref(db: firestore.Client, uid: str) -> Any:
    return db.collection(USERS).document(uid)


class CountedWindow:
    """One user's count of one kind in the current window, read and written in a transaction."""

    def __init__(self, db: firestore.Client, uid: str, window: Window, now: float) -> None:
        self.window = window
        self.now = now
        index = math.floor(now / window.seconds)
        self.ends_at = (index + 1) * window.seconds
        self.ref = user_ref(db, uid).collection(LIMITS).document(f"{window.kind}-{index}")
        self._keys: list[str] = []

    def read(self, txn: firestore.Transaction) -> None:
        snap = self.ref.get(transaction=txn)
        keys = (snap.to_dict() or {}).get("keys") if snap.exists else None
        self._keys = [k for k in keys if isinstance(k, str)] if isinstance(keys, list) else []

    def counted(self, key: str) -> bool:
        return key in self._keys

    def check(self, key: str) -> None:
        """Raise RateLimited if `key` would go over the limit (a counted key never does)."""
        if key not in self._keys and len(self._keys) >= self.window.limit:
            raise RateLimited(
                f"too many {self.window.kind}", max(0.1, round(self.ends_at - self.now, 1))
            )

    def write(self, txn: firestore.Transaction, key: str) -> None:
        if key in self._keys:
            return
        txn.set(
            self.ref,
            {
                "keys": [*self._keys, key],
                # A TTL policy on expire_at removes old windows.
                "expire_at": _timestamp(self.ends_at + 3600),
            },
        )


class SocketRegistry:
    """Open sockets per user, across instances.

    The records of this process's sockets are renewed together, every half lease, in batched
    writes of up to 500: at 5,000 sockets a renewal each on its own came to 33 Firestore RPCs a
    second on an idle edge, each a greenlet and a gRPC call; batched, it is 10 RPCs per half
    lease. Firestore bills the same writes either way.
    """

    BATCH = 500  # Firestore's limit of writes per commit

    def __init__(self, db: firestore.Client, limit: int, lease_s: float) -> None:
        self._db = db
        self._limit = limit
        self._lease_s = lease_s
        self._live: set[tuple[str, str]] = set()  # (uid, socket id)
        self._lock = threading.Lock()
        self._renewer: threading.Thread | None = None
        self.renewals = 0

    def open(self, uid: str, socket_id: str) -> None:
        """Record an open socket, or RateLimited if the user holds too many."""
        sockets = user_ref(self._db, uid).collection(SOCKETS)
        now = time.time()
        # A plain query, then a plain write, not one transaction: the emulator locks a query's
        # whole range in a transaction, and concurrent sign-ins of different users then failed
        # with "Transaction lock timeout" for good (found by `make chaos`). Two sockets of one
        # user opened at the same instant may both pass; a limit can afford that.
        live = (
            sockets.where(filter=firestore.FieldFilter("expires_at", ">", now))
            .limit(self._limit + 1)
            .get()
        )
        others = [s for s in live if s.id != socket_id]
        if len(others) >= self._limit:
            soonest = min(float((s.to_dict() or {}).get("expires_at", now)) for s in others)
            raise RateLimited("too many open connections", max(1.0, round(soonest - now)))
        sockets.document(socket_id).set(self._record(now))
        with self._lock:
            self._live.add((uid, socket_id))
            if self._renewer is None:
                self._renewer = threading.Thread(
                    target=self._renew_forever, daemon=True, name="socket-leases"
                )
                self._renewer.start()

    def close(self, uid: str, socket_id: str) -> None:
        with self._lock:
            self._live.discard((uid, socket_id))
        user_ref(self._db, uid).collection(SOCKETS).document(socket_id).delete()

    def renew_all(self) -> int:
        """Renew every live socket's record now, in batches; the number renewed."""
        with self._lock:
            live = sorted(self._live)
        record = self._record(time.time())
        for start in range(0, len(live), self.BATCH):
            batch = self._db.batch()
            for uid, socket_id in live[start : start + self.BATCH]:
                batch.set(user_ref(self._db, uid).collection(SOCKETS).document(socket_id), record)
            batch.commit()
        self.renewals += len(live)
        return len(live)

    def _renew_forever(self) -> None:
        while True:
            time.sleep(self._lease_s / 2)
            try:
                self.renew_all()
            except Exception:
                # The next round tries again, half a lease before the records run out.
                log.warning("renewing socket records failed", exc_info=True)

    def _record(self, now: float) -> dict[str, Any]:
        return {
            "expires_at": now + self._lease_s,
            "expire_at": _timestamp(now + self._lease_s + 3600),
        }


def _timestamp(epoch: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
