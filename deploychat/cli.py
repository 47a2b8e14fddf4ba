"""The `deploychat` command: `chat` (interactive) and `send` (one turn, for scripts).

Exit codes of `send`: 0 the reply arrived; 1 the turn failed (an `error` event) or the message
was refused; 3 the server could not be reached; 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from deploychat.client import (
    DEFAULT_URL,
    ChatClient,
    ClientConfig,
    ConnectionState,
    MessageDropped,
    ServerError,
    StateChanged,
)
from deploychat.client.connection import STORED_EVENTS
from deploychat.client.text import TranscriptPrinter, state_line
from deploychat.protocol import ChatEvent, ErrorEvent, TypingEvent

EXIT_OK = 0
EXIT_TURN_FAILED = 1
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130

SESSION_ID = re.compile(r"[A-Za-z0-9_-]{8,128}")

# Two Ctrl-C presses this close together mean "quit".
DOUBLE_PRESS_S = 2.0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        config = _config(args)
    except ValueError as exc:
        print(f"deploychat: {exc}", file=sys.stderr)
        return 2
    command: Callable[[argparse.Namespace, ClientConfig], int] = args.command
    return command(args, config)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deploychat", description="Talk to deploychat.")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=os.environ.get("DEPLOYCHAT_URL", DEFAULT_URL),
        help=f"the edge's chat WebSocket (default: {DEFAULT_URL})",
    )
    common.add_argument("--session", help="continue this session instead of starting one")
    common.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="keep the session, last seq and unsent messages in FILE",
    )
    common.add_argument(
        "--token",
        default=os.environ.get("DEPLOYCHAT_TOKEN"),
        help="credential for the edge, if it asks for one ($DEPLOYCHAT_TOKEN)",
    )
    common.add_argument(
        "--attempts", type=int, default=10, help="reconnect attempts before giving up (default: 10)"
    )
    common.add_argument(
        "--backoff",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="first reconnect delay, growing 1.5x up to 30 s (default: 1)",
    )
    common.add_argument("-v", "--verbose", action="store_true", help="log connection details")

    chat = sub.add_parser(
        "chat",
        parents=[common],
        help="an interactive conversation",
        description="Enter sends. Ctrl-C stops a reply; Ctrl-C twice or "
        "Ctrl-D quits. /reconnect retries after giving up.",
    )
    chat.set_defaults(command=_run_chat)

    send = sub.add_parser("send", parents=[common], help="send one message, print the reply")
    send.add_argument("text", help="the message ('-' reads it from stdin)")
    send.set_defaults(command=_run_send)
    return parser


def _config(args: argparse.Namespace) -> ClientConfig:
    if args.attempts < 1 or args.backoff < 0:
        raise ValueError("--attempts must be at least 1 and --backoff not negative")
    if args.session is not None and not SESSION_ID.fullmatch(args.session):
        raise ValueError("--session must be 8 to 128 of the characters A-Z a-z 0-9 _ -")
    # An interactive session shows the history of a session it continues; `send` only its turn.
    replay = 0 if args.command is _run_chat and args.session else None
    return ClientConfig(
        url=args.url,
        session_id=args.session,
        last_seq=replay,
        token=args.token,
        state_file=args.state,
        max_attempts=args.attempts,
        initial_backoff_s=args.backoff,
    )


def _status(text: str) -> None:
    print(f"[{text}]", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- send


def _run_send(args: argparse.Namespace, config: ClientConfig) -> int:
    text = sys.stdin.read() if args.text == "-" else args.text
    if not text.strip():
        print("deploychat: the message is empty", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_send(config, text))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


async def _send(config: ClientConfig, text: str) -> int:
    printer = TranscriptPrinter(sys.stdout, show_user=False)
    client = ChatClient(config)
    interrupted = False
    turn_id = ""
    background: set[asyncio.Task[None]] = set()

    def on_sigint() -> None:
        nonlocal interrupted
        if interrupted:
            raise KeyboardInterrupt
        interrupted = True
        _status("stopping the reply; Ctrl-C again to quit")
        background.add(task := asyncio.get_running_loop().create_task(client.cancel(turn_id)))
        task.add_done_callback(background.discard)

    async with client:
        with _sigint(on_sigint):
            try:
                turn_id = await client.send(text)
            except ValueError as exc:
                print(f"deploychat: {exc}", file=sys.stderr)
                return 2
            result = EXIT_OK
            async for update in client.updates():
                if isinstance(update, StateChanged):
                    if update.state is ConnectionState.ERROR:
                        print(f"deploychat: {update.reason}", file=sys.stderr)
                        return EXIT_UNREACHABLE
                    if update.state is ConnectionState.RECONNECTING:
                        _status(state_line(update, config.max_attempts))
                elif isinstance(update, MessageDropped) and update.id == turn_id:
                    print(f"deploychat: the message was refused: {update.reason}", file=sys.stderr)
                    return EXIT_TURN_FAILED
                elif isinstance(update, ServerError):
                    _status(f"server: {update.frame.code}: {update.frame.message}")
                elif isinstance(update, STORED_EVENTS) and update.turn_id == turn_id:
                    if isinstance(update, ErrorEvent):
                        printer.line("")
                        print(
                            f"deploychat: the turn failed: {update.code}: {update.message}",
                            file=sys.stderr,
                        )
                        result = EXIT_TURN_FAILED
                    elif isinstance(update, TypingEvent) and not update.is_typing:
                        print(f"[session {client.session_id}]", file=sys.stderr)
                        return EXIT_INTERRUPTED if interrupted else result
                    else:
                        printer.event(update)
    return EXIT_UNREACHABLE


# ---------------------------------------------------------------- chat


def _run_chat(args: argparse.Namespace, config: ClientConfig) -> int:
    try:
        return asyncio.run(_chat(config))
    except KeyboardInterrupt:
        return EXIT_OK


async def _chat(config: ClientConfig) -> int:
    loop = asyncio.get_running_loop()
    printer = TranscriptPrinter(sys.stdout)
    client = ChatClient(config)
    lines = _stdin_lines(loop)
    quit_now = asyncio.Event()
    own: set[str] = set()
    background: set[asyncio.Task[None]] = set()
    running: str | None = None
    last_press = 0.0
    interactive = sys.stdin.isatty()

    def prompt() -> None:
        if interactive:
            sys.stdout.write("> ")
            sys.stdout.flush()

    def on_sigint() -> None:
        nonlocal last_press
        now = time.monotonic()
        if now - last_press < DOUBLE_PRESS_S:
            quit_now.set()
        elif running is not None:
            _status("stopping the reply; Ctrl-C again to quit")
            background.add(task := loop.create_task(client.cancel(running)))
            task.add_done_callback(background.discard)
        else:
            _status("Ctrl-C again or Ctrl-D to quit")
        last_press = now

    async def read_input() -> None:
        while (line := await lines.get()) is not None:
            text = line.rstrip("\n")
            if text.strip() in ("/quit", "/exit"):
                break
            if text.strip() == "/reconnect":
                client.reconnect()
            elif text.strip():
                try:
                    own.add(await client.send(text))
                except ValueError as exc:
                    _status(str(exc))
        quit_now.set()

    async def show_updates() -> None:
        nonlocal running
        async for update in client.updates():
            if isinstance(update, StateChanged):
                extra = (
                    f" · session {client.session_id}"
                    if update.state is (ConnectionState.CONNECTED)
                    else ""
                )
                _status(state_line(update, config.max_attempts) + extra)
                if update.state is ConnectionState.ERROR:
                    _status("type /reconnect to try again")
            elif isinstance(update, MessageDropped):
                _status(f"not sent: {update.content[:60]!r}: {update.reason}")
            elif isinstance(update, ServerError):
                _status(f"server: {update.frame.code}: {update.frame.message}")
            elif isinstance(update, TypingEvent):
                running = update.turn_id if update.is_typing else None
                if not update.is_typing:
                    prompt()
            elif isinstance(update, STORED_EVENTS):
                own_message = isinstance(update, ChatEvent) and update.message_id in own
                printer.event(update, own=own_message)

    _status("Enter sends · Ctrl-C stops a reply · Ctrl-C twice or Ctrl-D quits")
    async with client:
        with _sigint(on_sigint):
            tasks = [loop.create_task(read_input()), loop.create_task(show_updates())]
            await quit_now.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    if client.pending:
        kept = " (kept in the state file)" if config.state_file else ""
        _status(f"{len(client.pending)} message(s) not delivered{kept}")
    if client.session_id:
        _status(f"session {client.session_id}")
    return EXIT_OK


def _stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
    """Lines typed, None at end of input. A daemon thread, so quitting never waits on a read."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        with contextlib.suppress(RuntimeError):  # the loop may be gone already
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=read, name="stdin", daemon=True).start()
    return queue


@contextlib.contextmanager
def _sigint(handler: Callable[[], None]) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, handler)
    except (NotImplementedError, RuntimeError):  # not the main thread, or not Unix
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)


if __name__ == "__main__":
    sys.exit(main())
