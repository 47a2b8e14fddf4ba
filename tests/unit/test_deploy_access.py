"""Who may deploy to Cloud Run: the allowlist setting and the session owner's verified email."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.deploy_access import cloud_run_refusal
from agent.settings import AgentSettings


def allowlist(monkeypatch: pytest.MonkeyPatch, value: str) -> list[str]:
    monkeypatch.setenv("DEPLOYCHAT_DEPLOY_ALLOWLIST", value)
    return AgentSettings().deploy_allowlist


def test_empty_by_default_so_nobody_may(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEPLOYCHAT_DEPLOY_ALLOWLIST", raising=False)
    entries = AgentSettings().deploy_allowlist
    assert entries == []
    owner = {"owner_email": "alice@example.com", "owner_email_verified": True}
    assert cloud_run_refusal(entries, owner) is not None


def test_emails_and_domains(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = allowlist(monkeypatch, '["Alice@Example.com", " @Example.org "]')
    assert entries == ["alice@example.com", "@example.org"]

    def may(email: str | None, verified: bool = True) -> bool:
        session = {"owner_email": email, "owner_email_verified": verified}
        return cloud_run_refusal(entries, session) is None

    assert may("alice@example.com") and may("ALICE@example.com")
    assert may("bob@example.org")
    assert not may("bob@example.com")  # only alice at example.com
    assert not may("bob@dev.example.org")  # a domain entry is that domain, not subdomains
    assert not may("bob@example.org.evil.io")
    assert not may("alice@example.com", verified=False)
    assert not may(None)


def test_the_sentence_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = allowlist(monkeypatch, '["@example.org"]')
    guest = cloud_run_refusal(entries, {"owner_email": None})
    unverified = cloud_run_refusal(
        entries, {"owner_email": "a@b.io", "owner_email_verified": False}
    )
    other = cloud_run_refusal(entries, {"owner_email": "a@b.io", "owner_email_verified": True})
    assert guest is not None and "guest" in guest
    assert unverified is not None and "not verified" in unverified
    assert other is not None and "a@b.io" in other and "allowlist" in other
    # A client-made field never counts: only what the edge wrote.
    assert cloud_run_refusal(entries, {"email": "x@example.org", "verified": True}) is not None


@pytest.mark.parametrize("bad", ['["alice"]', '["example.org"]', '["@"]', '"@example.org"'])
def test_a_bad_entry_stops_the_agent_starting(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("DEPLOYCHAT_DEPLOY_ALLOWLIST", bad)
    with pytest.raises(ValidationError):
        AgentSettings()
