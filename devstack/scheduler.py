"""Cloud Scheduler's part locally: the sweeper, called every few seconds."""

from __future__ import annotations

import contextlib
import threading
import urllib.request


class Scheduler:
    """POST to the sweeper every `interval_s`."""

    def __init__(self, url: str, interval_s: float) -> None:
        self._url = url
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="sweep-scheduler")
        self.runs = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            request = urllib.request.Request(self._url, method="POST")
            # A sweeper down (restarting, or the emulator paused) misses a run, as a failed
            # Cloud Scheduler attempt would.
            with contextlib.suppress(OSError):
                urllib.request.urlopen(request, timeout=max(30.0, self._interval)).close()
            self.runs += 1
