"""The `deploychat` command: `chat` (interactive), `send` (one turn, for scripts), and the
account commands `login`, `logout`, `whoami`, `sessions` (deploychat/client/account.py).

Exit codes of `send`: 0 the reply arrived; 1 the turn failed (an `error` event) or the message
was refused; 3 the server could not be reached (or would not have this sign-in); 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from deploychat.client import (
    ChatClient,
    ClientConfig,
    ConnectionState,
    HistoryLost,
    MessageDropped,
    ServerError,
    SessionLost,
    StateChanged,
    account,
)
from deploychat.client.connection import STORED_EVENTS
from deploychat.client.credentials import CredentialStore
from deploychat.client.edge_http import EdgeAddress
from deploychat.client.identity import AuthError
from deploychat.client.rich_text import MarkdownTranscript
from deploychat.client.settings import ClientSettings
from deploychat.client.signin import EdgeIdentity, SignIn
from deploychat.client.terminal import sigint_handler, stdin_lines
from deploychat.client.text import TranscriptPrinter, session_news, state_line
from deploychat.protocol import ChatEvent, ErrorEvent, TypingEvent

EXIT_OK = 0
EXIT_TURN_FAILED = 1
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130

SESSION_ID = re.compile(r"[A-Za-z0-9_-]{8,128}")

# Two Ctrl-C presses this close together mean "quit".
DOUBLE_PRESS_S = 2.0


Printer = TranscriptPrinter | MarkdownTranscript
Command = Callable[[argparse.Namespace, ClientSettings, SignIn], int]


def main(argv: list[str] | None = None) -> int:
    settings = ClientSettings()
    args = _parser(settings).parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        EdgeAddress.parse(args.url)
    except ValueError as exc:
        print(f"deploychat: {exc}", file=sys.stderr)
        return 2
    command: Command = args.command
    return command(args, settings, SignIn(CredentialStore()))


def _parser(settings: ClientSettings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deploychat", description="Talk to deploychat.")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    edge = argparse.ArgumentParser(add_help=False)
    edge.add_argument(
        "--url",
        default=settings.url,
        help="the edge: its chat WebSocket (ws://localhost:8000/ws/chat) or its page "
        f"(https://...) ($DEPLOYCHAT_URL; default: {settings.url})",
    )
    edge.add_argument(
        "--token",
        default=settings.token,
        help="an ID token to send as is, instead of the kept sign-in ($DEPLOYCHAT_TOKEN)",
    )
    edge.add_argument("-v", "--verbose", action="store_true", help="log connection details")

    common = argparse.ArgumentParser(add_help=False, parents=[edge])
    which = common.add_mutually_exclusive_group()
    which.add_argument("--session", help="continue this session instead of starting one")
    which.add_argument(
        "--last", action="store_true", help="continue your newest session (see `sessions`)"
    )
    common.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="keep the session, last seq and unsent messages in FILE",
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
    common.add_argument(
        "--plain",
        action="store_true",
        help="print replies as plain text even on a terminal (they are when piped)",
    )

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

    login = sub.add_parser(
        "login",
        parents=[edge],
        help="sign in (email and password, or --google) and keep the sign-in",
        description="Keeps the refresh token in $XDG_CONFIG_HOME/deploychat/credentials.json "
        "(mode 0600), per edge. Against a local stack the CLI signs in as a guest on its own.",
    )
    login.add_argument("--email", help="the account's email (asked if not given)")
    login.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin, not a prompt"
    )
    login.add_argument("--sign-up", action="store_true", help="create the account first")
    login.add_argument("--google", action="store_true", help="sign in with Google in a browser")
    login.add_argument("--client-id", help="OAuth client id ($DEPLOYCHAT_GOOGLE_CLIENT_ID)")
    login.add_argument(
        "--no-browser", action="store_true", help="print the Google sign-in link, open nothing"
    )
    login.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the browser"
    )
    login.set_defaults(command=account.login)

    logout = sub.add_parser("logout", parents=[edge], help="forget the kept sign-in for the edge")
    logout.set_defaults(command=lambda args, _s, signin: account.logout(args, signin.store))
    whoami = sub.add_parser("whoami", parents=[edge], help="who the CLI is signed in as")
    whoami.set_defaults(command=account.whoami)
    sessions = sub.add_parser("sessions", parents=[edge], help="your conversations, newest first")
    sessions.set_defaults(command=account.sessions)
    return parser


def _config(args: argparse.Namespace, signin: SignIn) -> ClientConfig:
    if args.attempts < 1 or args.backoff < 0:
        raise ValueError("--attempts must be at least 1 and --backoff not negative")
    if args.session is not None and not SESSION_ID.fullmatch(args.session):
        raise ValueError("--session must be 8 to 128 of the characters A-Z a-z 0-9 _ -")
    edge = EdgeAddress.parse(args.url)
    session = args.session
    if args.last:
        found = account.fetch_sessions(edge, args.token, signin)
        session = found[0].session_id if found else None
        if session is None:
            _status("no conversations yet: starting a new one")
    # An interactive session shows the history of a session it continues; `send` only its turn.
    replay = 0 if args.command is _run_chat and session else None
    return ClientConfig(
        url=edge.ws_url,
        session_id=session,
        last_seq=replay,
        token=args.token,
        auth=None if args.token else EdgeIdentity(signin, edge, announce=_status),
        state_file=args.state,
        max_attempts=args.attempts,
        initial_backoff_s=args.backoff,
    )


def _prepare(args: argparse.Namespace, signin: SignIn) -> ClientConfig | int:
    try:
        return _config(args, signin)
    except ValueError as exc:
        print(f"deploychat: {exc}", file=sys.stderr)
        return 2
    except AuthError as exc:
        print(f"deploychat: {exc}", file=sys.stderr)
        return account.EXIT_UNREACHABLE


def _printer(args: argparse.Namespace, *, show_user: bool) -> Printer:
    if sys.stdout.isatty() and not args.plain:
        return MarkdownTranscript(Console(), show_user=show_user)
    return TranscriptPrinter(sys.stdout, show_user=show_user)


def _status(text: str) -> None:
    print(f"[{text}]", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- send


def _run_send(args: argparse.Namespace, settings: ClientSettings, signin: SignIn) -> int:
    text = sys.stdin.read() if args.text == "-" else args.text
    if not text.strip():
        print("deploychat: the message is empty", file=sys.stderr)
        return 2
    config = _prepare(args, signin)
    if isinstance(config, int):
        return config
    printer = _printer(args, show_user=False)
    try:
        return asyncio.run(_send(config, text, printer))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        printer.close()


async def _send(config: ClientConfig, text: str, printer: Printer) -> int:
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
        with sigint_handler(on_sigint):
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
                elif isinstance(update, SessionLost | HistoryLost):
                    _status(session_news(update))
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


def _run_chat(args: argparse.Namespace, settings: ClientSettings, signin: SignIn) -> int:
    config = _prepare(args, signin)
    if isinstance(config, int):
        return config
    printer = _printer(args, show_user=True)
    try:
        return asyncio.run(_chat(config, printer))
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        printer.close()


async def _chat(config: ClientConfig, printer: Printer) -> int:
    loop = asyncio.get_running_loop()
    client = ChatClient(config)
    lines = stdin_lines(loop)
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
            elif isinstance(update, SessionLost | HistoryLost):
                _status(session_news(update))
            elif isinstance(update, TypingEvent):
                running = update.turn_id if update.is_typing else None
                if not update.is_typing:
                    prompt()
            elif isinstance(update, STORED_EVENTS):
                own_message = isinstance(update, ChatEvent) and update.message_id in own
                printer.event(update, own=own_message)

    _status("Enter sends · Ctrl-C stops a reply · Ctrl-C twice or Ctrl-D quits")
    async with client:
        with sigint_handler(on_sigint):
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


if __name__ == "__main__":
    sys.exit(main())
