"""The agent without a model: recognises the product's requests and runs the same tools.

It answers in the shape of a model session (text and tool calls), so a turn runs the same way
with or without Gemini; every answer says plainly that it comes from offline mode.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence

from .model import HistoryMessage, ToolCall, ToolResult, TurnContext

NOTICE = "**Offline mode** (no model credentials are configured): "
HELP = """\
I recognise these requests without a model:

- `analyse <path or git URL>`: what kind of app it is, how it starts, its port, with evidence
- `write a Dockerfile` (for the app analysed last) or `write a Dockerfile for <path>`
- `deploy <path> locally`: build and run it on this machine, with live progress
- `deploy <path> to cloud run project <id> region <region>`: Cloud Build, then Cloud Run
- for an app in a subfolder (a monorepo): `deploy the backend folder of <path or URL> locally`,
  or `analyse <path or URL> folder backend`
- `help`: this list

Set `GEMINI_API_KEY` (or Vertex AI on Google Cloud) and I understand plain words too."""

# A path or a git URL, so that "deploy my app" is not read as a source called "my".
_SOURCE = r"(?P<source>(?:\.{1,2}/|/|~/|https?://|git@|ssh://|git://|file://)\S*|[\w.-]+/\S*|\.)"
_FOLDER_WORD = r"(?:sub)?(?:folder|directory|dir)"
_FOLDER = r"[\w.-][\w./-]*"
# "the backend folder of <source>", "the folder backend of/in <source>"
_SUB_BEFORE = re.compile(
    rf"\b(?:the\s+)?(?:(?P<a>{_FOLDER})\s+{_FOLDER_WORD}|{_FOLDER_WORD}\s+(?P<b>{_FOLDER}))"
    r"\s+(?:of|in|from)\s+",
    re.I,
)
# "<source> folder backend", "<source> (folder backend)", "<source> --subfolder backend"
_SUB_AFTER = re.compile(
    rf"\s+\(?(?:in\s+)?(?:the\s+)?(?:{_FOLDER_WORD}|--subfolder)[=\s]+(?P<a>{_FOLDER})\)?",
    re.I,
)
_ANALYSE = re.compile(rf"^(?:please\s+)?(?:analy[sz]e|inspect|look\s+at|check)\s+{_SOURCE}", re.I)
_DOCKERFILE = re.compile(
    rf"^(?:please\s+)?(?:write|generate|make|create|give\s+me)\s+(?:a\s+|the\s+|me\s+a\s+)?"
    rf"docker\s*file(?:\s+for\s+{_SOURCE})?",
    re.I,
)
_DEPLOY = re.compile(rf"^(?:please\s+)?deploy\s+{_SOURCE}(?P<rest>.*)$", re.I | re.S)
_HELP = re.compile(r"^\s*(?:help|\?|what\s+can\s+you\s+do)", re.I)


def _subfolder(line: str) -> tuple[str, str | None]:
    """The line without its subfolder phrase, and the subfolder it names."""
    for pattern, glue in ((_SUB_BEFORE, " "), (_SUB_AFTER, "")):
        if match := pattern.search(line):
            sub = (match.groupdict().get("a") or match.groupdict().get("b") or "").strip("/")
            # "deploy the api folder of X locally" -> "deploy X locally", subfolder "api".
            rest = (line[: match.start()].rstrip() + glue + line[match.end() :]).strip()
            return rest, sub or None
    return line, None


def parse_command(text: str) -> ToolCall | None:
    line, sub = _subfolder(" ".join(text.strip().split()))
    call = _parse(line)
    # Every command takes a subfolder; "write a Dockerfile" only with a source named.
    if call is not None and sub and (call.name != "generate_dockerfile" or "source" in call.args):
        call.args["subfolder"] = sub
    return call


def _parse(line: str) -> ToolCall | None:
    if match := _ANALYSE.match(line):
        return ToolCall("analyse_repository", {"source": _clean(match["source"])})
    if match := _DOCKERFILE.match(line):
        source = {"source": _clean(match["source"])} if match["source"] else {}
        return ToolCall("generate_dockerfile", source)
    if match := _DEPLOY.match(line):
        rest = match["rest"].lower()
        cloud = re.search(r"cloud\s*run", rest) is not None
        args: dict[str, object] = {
            "source": _clean(match["source"]),
            "target": "cloud_run" if cloud else "local",
        }
        for key, pattern in (
            ("project", r"project\s+([a-z][a-z0-9-]+)"),
            ("region", r"region\s+([a-z]+-[a-z]+\d+)"),
            ("service", r"(?:service|as)\s+([a-z][a-z0-9-]*)"),
        ):
            if found := re.search(pattern, rest):
                args[key] = found.group(1)
        return ToolCall("request_deployment", args)
    return None


def _clean(source: str) -> str:
    return source.strip().rstrip(".,;:!?)").strip("`'\"")


class OfflineModel:
    offline = True

    def __init__(self, piece_delay_s: float) -> None:
        self._delay = piece_delay_s

    def start(
        self, history: Sequence[HistoryMessage], user_text: str, context: TurnContext
    ) -> OfflineSession:
        return OfflineSession(user_text, self._delay)


class OfflineSession:
    def __init__(self, user_text: str, delay: float) -> None:
        self._text = user_text
        self._delay = delay
        self._call = parse_command(user_text)
        self._results: list[ToolResult] | None = None
        self._steps = 0

    def stream(self) -> Iterator[str | ToolCall]:
        self._steps += 1
        if self._steps == 1:
            if self._call is None:
                quoted = (self._text.strip().splitlines() or [""])[0][:200]
                intro = (
                    ""
                    if _HELP.match(self._text)
                    else f"I can't understand “{quoted}” without a model. "
                )
                yield from self._pieces(NOTICE + intro + HELP)
                return
            yield from self._pieces(NOTICE + f"running `{self._call.name}`.\n\n")
            yield self._call
            return
        for result in self._results or []:
            summary = result.response.get("summary") or result.response.get("error") or "Done."
            yield from self._pieces(str(summary))

    def add_tool_results(self, results: list[ToolResult]) -> None:
        self._results = results

    def _pieces(self, text: str) -> Iterator[str]:
        # Several pieces, like a streamed answer, so clients see the same shape offline.
        words = text.split(" ")
        step = max(1, len(words) // 5)
        for i in range(0, len(words), step):
            if i and self._delay:
                time.sleep(self._delay)
            yield " ".join(words[i : i + step]) + (" " if i + step < len(words) else "")
