"""`make dev`: the whole stack in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from .stack import Stack, StackConfig


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--quiet", action="store_true", help="do not echo the services' logs")
    args = parser.parse_args()

    stack = Stack(StackConfig(edge_port=args.port, echo=not args.quiet))
    stop = threading.Event()
    # Explicitly: a process started in the background inherits SIGINT ignored.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print("starting the emulators, the agent function and the edge ...", file=sys.stderr)
    stack.start()
    assert stack.pubsub and stack.firestore
    keys = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "DEPLOYCHAT_GEMINI_API_KEY")
    has_key = any(os.environ.get(k) for k in keys)
    model = "Gemini" if has_key else "offline mode (no GEMINI_API_KEY)"
    print(
        f"""
deploychat is running
  chat page        {stack.edge_url}/   (http://localhost:{args.port})
  WebSocket        ws://localhost:{args.port}/ws/chat
  Pub/Sub emulator {stack.pubsub.host}   Firestore emulator {stack.firestore.host}
  agent function   http://127.0.0.1:{stack.function_port}   model: {model}
  logs             {stack.config.log_dir}
Ctrl-C stops everything.""",
        file=sys.stderr,
    )
    try:
        while not stop.wait(1.0):
            for proc in (stack.edge, stack.function):
                if proc is not None and not proc.alive:
                    print(f"{proc.name} exited; see {proc.log_path}", file=sys.stderr)
                    stop.set()
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping ...", file=sys.stderr)
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
