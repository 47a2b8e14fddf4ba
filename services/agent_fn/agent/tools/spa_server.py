"""Serves a built single-page app on this machine: files as they are, index.html for any other
path (client-side routes), as the nginx configuration in the image does.

Run as a script: `python spa_server.py <folder> <port> <host>`; standard library only, so it
runs with any interpreter.
"""

from __future__ import annotations

import functools
import http.server
import os
import sys


class SpaHandler(http.server.SimpleHTTPRequestHandler):
    def send_head(self):  # type: ignore[no-untyped-def]
        path = self.translate_path(self.path)
        if not os.path.exists(path):
            self.path = "/index.html"
        return super().send_head()


def main() -> None:
    folder, port, host = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    handler = functools.partial(SpaHandler, directory=folder)
    with http.server.ThreadingHTTPServer((host, port), handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
