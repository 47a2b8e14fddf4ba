"""Replies on a terminal: Markdown rendered by rich, never raw markers, the final text winning."""

from __future__ import annotations

import io

from rich.console import Console

from deploychat.client.rich_text import MarkdownTranscript
from deploychat.protocol import ChatEvent, DeploymentUpdateEvent


def terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=60, height=12, color_system="standard")
    return console, out


def piece(seq: int, delta: str, message: str = "m") -> ChatEvent:
    return ChatEvent(seq=seq, turn_id="t", message_id=message, role="assistant", delta=delta)


def final(seq: int, content: str, message: str = "m", stopped: bool = False) -> ChatEvent:
    return ChatEvent(
        seq=seq,
        turn_id="t",
        message_id=message,
        role="assistant",
        content=content,
        final=True,
        stopped=stopped,
    )


def after_last_clear(text: str) -> str:
    """What stays on the screen: the live area is erased (ESC[2K) before the final print."""
    return text.rsplit("\x1b[2K", 1)[-1]


def test_a_streamed_reply_is_rendered_and_half_markers_never_stay() -> None:
    console, out = terminal()
    printer = MarkdownTranscript(console)
    for seq, delta in enumerate(["Use **guni", "corn** and `PO", "RT`\n\n- one\n- two"], 1):
        printer.event(piece(seq, delta))
    printer.event(final(4, "Use **gunicorn** and `PORT`\n\n- one\n- two"))
    shown = after_last_clear(out.getvalue())
    assert "**" not in shown and "`" not in shown
    assert "\x1b[1mgunicorn" in shown  # bold
    assert shown.count("•") == 2


def test_the_final_text_wins_and_a_stopped_reply_says_so() -> None:
    console, out = terminal()
    printer = MarkdownTranscript(console)
    printer.event(piece(1, "Wrong"))
    printer.event(final(2, "Right", stopped=True))
    shown = after_last_clear(out.getvalue())
    assert "Wrong" not in shown and "Right" in shown and "[stopped]" in shown


def test_a_reply_taller_than_the_terminal_streams_its_tail() -> None:
    console, out = terminal()
    printer = MarkdownTranscript(console)
    text = "\n\n".join(f"paragraph {n}" for n in range(40))
    printer.event(piece(1, text))
    live = out.getvalue()
    assert "paragraph 39" in live and "paragraph 0\n" not in live
    printer.event(final(2, text))
    assert "paragraph 0" in after_last_clear(out.getvalue())
    printer.close()


def test_user_lines_and_other_events_are_one_line_each() -> None:
    console, out = terminal()
    printer = MarkdownTranscript(console)
    printer.event(
        ChatEvent(seq=1, turn_id="t", message_id="u", role="user", content="hi **x**", final=True)
    )
    printer.event(
        DeploymentUpdateEvent(
            seq=2, turn_id="t", deployment_id="d1", stage="build", progress=40, message="Building"
        )
    )
    shown = out.getvalue()
    assert "> hi **x**" in shown  # what the person typed, as typed
    assert "deploy d1 [ 40%] build: Building" in shown
