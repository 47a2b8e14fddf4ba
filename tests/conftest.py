"""Fixtures for every suite. The real stack on the emulators is started once per run (by the
first test that asks for it) and shared by the integration and browser tests.

Tests never depend on each other: each uses its own session ids and Gemini markers, and
Firestore is emptied before each test. Pub/Sub has no reset, so each run uses a new topic.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from devstack.processes import free_port
from devstack.stack import Stack, StackConfig
from tests.support.fake_gemini import FakeGemini
from tests.support.identity import forget_current_user

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="session")
def fake_gemini() -> Iterator[FakeGemini]:
    fake = FakeGemini().start()
    yield fake
    fake.stop()


def function_env(fake: FakeGemini) -> dict[str, str]:
    return {
        "GEMINI_API_KEY": "fake-key",
        "GOOGLE_GEMINI_BASE_URL": fake.url,
        "DEPLOYCHAT_MODEL_RETRY_ATTEMPTS": "3",
        "DEPLOYCHAT_MODEL_RETRY_INITIAL_DELAY_S": "0.05",
        "DEPLOYCHAT_MODEL_RETRY_MAX_DELAY_S": "0.2",
        "DEPLOYCHAT_MODEL_TIMEOUT_S": "30",
        "DEPLOYCHAT_PIECE_INTERVAL_MS": "100",
        # A killed attempt is taken for dead 3 beats (6 s) after its last one.
        "DEPLOYCHAT_TURN_HEARTBEAT_S": "2",
        "DEPLOYCHAT_LOG_LEVEL": "INFO",
    }


@pytest.fixture(scope="session")
def stack(fake_gemini: FakeGemini) -> Iterator[Stack]:
    run = uuid.uuid4().hex[:8]
    config = StackConfig(
        topic=f"turns-{run}",
        edge_port=free_port(),
        log_dir=ARTIFACTS / "logs" / f"integration-{run}",
        min_backoff_s=1,
        max_backoff_s=2,
        function_env=function_env(fake_gemini),
        edge_env={"DEPLOYCHAT_FEED_LINGER_S": "2"},
        # No sweeper here: tests of the turn log leave sessions with leases from a fake clock,
        # which it would drive again under them. Its own tests run stacks of their own.
        sweep_interval_s=None,
    )
    stack = Stack(config)
    stack.start()
    yield stack
    stack.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # A failing test on the shared stack shows what the services last logged: CI keeps only
    # the test output, not the logs under test-artifacts/.
    report = yield
    stack = getattr(item, "funcargs", {}).get("stack")
    if report.failed and isinstance(stack, Stack):
        for name, proc in (("edge", stack.edge), ("function", stack.function)):
            if proc is not None:
                lines = [line[:400] for line in proc.tail(40).splitlines()]
                report.sections.append((f"{name} log, last lines", "\n".join(lines)))
    return report


@pytest.fixture(autouse=True)
def _clean_firestore(request: pytest.FixtureRequest) -> None:
    # Each test acts for a user of its own (tests/support/identity.current_user).
    forget_current_user()
    if "stack" in request.fixturenames:
        stack: Stack = request.getfixturevalue("stack")
        stack.reset_firestore()
        # A test that killed a service leaves it running again for the next one.
        if stack.function is not None and not stack.function.alive:
            stack.start_function()
        if stack.edge is not None and not stack.edge.alive:
            stack.start_edge()


@pytest.fixture
def ws_url(stack: Stack) -> str:
    return stack.ws_url


@contextlib.contextmanager
def offline_mode(stack: Stack) -> Iterator[Stack]:
    """The stack with the function in offline mode (no model credentials) until the end."""
    saved = dict(stack.config.function_env)
    stack.config.function_env = {"DEPLOYCHAT_OFFLINE_PIECE_DELAY_MS": "0"}
    stack.restart_function()
    try:
        yield stack
    finally:
        stack.config.function_env = saved
        stack.restart_function()


@pytest.fixture
def offline(stack: Stack) -> Iterator[Stack]:
    """Offline mode for one test (a module whose every test is offline overrides it)."""
    with offline_mode(stack) as offline_stack:
        yield offline_stack


@pytest.fixture
def cleanup_deployments(stack: Stack) -> Iterator[None]:
    """Stops the apps a test deployed locally (they outlive the turn, by design)."""
    yield
    stack.stop_local_deployments()


@pytest.fixture
def uid() -> str:
    """A fresh id for this test's sessions, turns and markers."""
    return uuid.uuid4().hex[:12]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        path = Path(str(item.fspath))
        for suite in ("integration", "e2e"):
            if path.is_relative_to(here / suite):
                item.add_marker(getattr(pytest.mark, suite))


os.environ.setdefault("DEPLOYCHAT_LOG_FORMAT", "text")
