"""The two ways a tool stops early: it failed (ToolError) or the user asked it to (Cancelled)."""

from __future__ import annotations

from deploychat.errors import PermanentError


class ToolError(PermanentError):
    """The tool cannot do the job; `message` is written for the user and says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "agent_failed")


class Cancelled(Exception):
    """`should_cancel` said stop; whatever the tool had started has been cleaned up.

    Not a DeploychatError on purpose: a cancel is not a failure to report, and a generic
    `except DeploychatError` must not swallow it.
    """


class ChooseApp(ToolError):
    """The repository holds several apps and none at its root: the user picks a subfolder.

    A question rather than a failure; `apps` are the subfolders, with what each one is.
    """

    def __init__(self, message: str, apps: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.apps = apps
