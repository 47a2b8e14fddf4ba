"""The conversation on a terminal: replies rendered as Markdown with `rich` as they stream.

While a reply streams, its Markdown so far is drawn in a live area (the bottom of it, if it is
taller than the terminal), so half-finished markers never show raw. When the final text comes,
the live area is cleared and the whole reply is printed once, rendered: the final `content` is
the authoritative text. Output that is not a terminal uses text.TranscriptPrinter instead.
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.segment import Segment
from rich.text import Text

from deploychat.protocol import ChatEvent, SessionEvent

from .text import event_line

CODE_THEME = "monokai"


class _Tail:
    """Markdown cut to its last lines, so a long reply never overflows the live area (which
    could then not be cleared and would be drawn twice)."""

    def __init__(self, markdown: str) -> None:
        self._markdown = markdown

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = console.render_lines(Markdown(self._markdown, code_theme=CODE_THEME), options)
        room = max(1, console.size.height - 2)
        for line in lines[-room:]:
            yield from line
            yield Segment.line()


class MarkdownTranscript:
    """Same interface as text.TranscriptPrinter: `event()`, `line()`, `close()`."""

    def __init__(self, console: Console, *, show_user: bool = True) -> None:
        self._console = console
        self._show_user = show_user
        self._text: dict[str, str] = {}
        self._live: Live | None = None
        self._open: str | None = None  # the message in the live area

    def event(self, event: SessionEvent, *, own: bool = False) -> None:
        if isinstance(event, ChatEvent):
            if event.role == "user":
                if self._show_user and not own:
                    self.line(Text("> " + (event.content or event.delta), style="bold cyan"))
            elif event.final:
                self._final(event)
            else:
                self._piece(event)
            return
        text = event_line(event)
        if text is not None:
            self.line(Text(text, style="dim" if text.startswith("deploy ") else ""))

    def line(self, text: str | Text) -> None:
        # With a live area up, rich prints above it; the streaming reply stays below.
        self._console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        self._stop_live()

    def _piece(self, event: ChatEvent) -> None:
        if self._open != event.message_id:
            self._stop_live()
            self._open = event.message_id
            # Status lines written meanwhile (stderr) are redirected above the live area.
            self._live = Live(console=self._console, transient=True, auto_refresh=False)
            self._live.start()
        text = self._text.get(event.message_id, "") + event.delta
        self._text[event.message_id] = text
        assert self._live is not None
        self._live.update(_Tail(text), refresh=True)

    def _final(self, event: ChatEvent) -> None:
        self._text.pop(event.message_id, None)
        if self._open == event.message_id:
            self._stop_live()
        content = event.content or ""
        if content:
            self._console.print(Markdown(content, code_theme=CODE_THEME))
        if event.stopped:
            self._console.print(Text("[stopped]", style="yellow"))

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        self._open = None
