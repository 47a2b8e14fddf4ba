"""Who may deploy to Cloud Run: the session owner's verified email, on the allowlist.

The owner is what the edge wrote on the session document when it verified the ID token
(`owner_email`, `owner_email_verified`); nothing a client sends counts. Entries are exact emails
or "@domain" (that domain exactly, not its subdomains), lower-cased by the settings.
"""

from __future__ import annotations

from typing import Any

from .event_writes import EventDraft


def cloud_run_refusal(allowlist: list[str], session: dict[str, Any]) -> str | None:
    """None if the session's owner may deploy to Cloud Run, else the sentence saying why not."""
    email = session.get("owner_email")
    verified = session.get("owner_email_verified") is True
    if isinstance(email, str) and verified:
        address = email.strip().lower()
        domain = "@" + address.rpartition("@")[2]
        if address in allowlist or domain in allowlist:
            return None
        who = f"your account ({address}) is not on it"
    elif isinstance(email, str) and email:
        who = f"your email ({email}) is not verified yet"
    else:
        who = "you are signed in without an email (as a guest)"
    return (
        "Deploying to Cloud Run is open only to the people on this deployment's allowlist, and "
        f"{who}. You can still analyse apps and get their Dockerfiles."
    )


def forbidden_event(turn_id: str, message: str) -> EventDraft:
    return {
        "type": "error",
        "turn_id": turn_id,
        "code": "forbidden",
        "message": message,
        "retryable": False,
    }
