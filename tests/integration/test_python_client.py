"""The Python client against the real stack, through a proxy that breaks the connection, and
against a scripted server for what the real one never does on demand (1012, gaps)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from deploychat.client import (
    ChatClient,
    ClientConfig,
    ConnectionState,
    MessageAcked,
    ServerError,
    SessionLost,
    StateChanged,
    Update,
)
from deploychat.client.identity import Endpoints, IdentityToolkit, Tokens
from deploychat.client.signin import RefreshingToken
from deploychat.protocol import ChatEvent, SessionEvent, TypingEvent
from devstack.processes import free_port
from devstack.stack import Stack
from tests.support.fake_gemini import FakeGemini, Reply, Script
from tests.support.identity import API_KEY, current_user, emulator_host, sign_up_guest
from tests.support.tcp_proxy import TcpProxy

FAST = ClientConfig(
    initial_backoff_s=0.2,
    jitter=0.1,
    ping_interval_s=1.0,
    pong_timeout_s=1.0,
    # Signing in and opening a session take Firestore writes: slow on a loaded machine.
    connect_timeout_s=10.0,
    close_timeout_s=0.5,
)


def signed_in(url: str, **fields: Any) -> ClientConfig:
    """FAST, connecting as this test's user (a guest on the Auth emulator)."""
    return replace(FAST, url=url, token=current_user().id_token, **fields)


@pytest.fixture
def proxy(stack: Stack) -> Iterator[TcpProxy]:
    with TcpProxy(stack.config.edge_port) as proxy:
        yield proxy


def run[T](coro: Awaitable[T], timeout: float = 60) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


class Recorder:
    """Everything a client reports, kept in order, with a way to wait for something."""

    def __init__(self, client: ChatClient) -> None:
        self.items: list[Update] = []
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._consume(client))

    async def _consume(self, client: ChatClient) -> None:
        async for update in client.updates():
            self.items.append(update)
            self._changed.set()

    async def until(self, done: Callable[[Update], bool], timeout: float = 30) -> Update:
        async with asyncio.timeout(timeout):
            seen = 0
            while True:
                for update in self.items[seen:]:
                    if done(update):
                        return update
                seen = len(self.items)
                self._changed.clear()
                await self._changed.wait()

    @property
    def events(self) -> list[SessionEvent]:
        return [u for u in self.items if hasattr(u, "seq")]  # type: ignore[misc]

    @property
    def states(self) -> list[ConnectionState]:
        return [u.state for u in self.items if isinstance(u, StateChanged)]


def turn_end(turn_id: str) -> Callable[[Update], bool]:
    return lambda u: isinstance(u, TypingEvent) and u.turn_id == turn_id and not u.is_typing


def reply_of(events: list[SessionEvent], turn_id: str) -> tuple[str, ChatEvent]:
    mine = [
        e
        for e in events
        if isinstance(e, ChatEvent) and e.role == "assistant" and e.turn_id == turn_id
    ]
    finals = [e for e in mine if e.final]
    assert len(finals) == 1, mine
    return "".join(e.delta for e in mine if not e.final), finals[0]


def user_ids(events: list[SessionEvent]) -> list[str]:
    return [e.message_id for e in events if isinstance(e, ChatEvent) and e.role == "user"]


def assert_exactly_once_in_order(events: list[SessionEvent], start: int = 1) -> None:
    assert [e.seq for e in events] == list(range(start, start + len(events)))


# ---------------------------------------------------------------- against the real stack


def test_a_reply_cut_off_mid_stream_arrives_complete_exactly_once(
    proxy: TcpProxy, fake_gemini: FakeGemini, uid: str
) -> None:
    chunks = [f"piece{i} " for i in range(14)]
    fake_gemini.script(uid, Script(replies=[Reply(chunks=chunks, delay_s=0.15)]))

    async def scenario() -> Recorder:
        async with ChatClient(signed_in(proxy.ws_url)) as client:
            rec = Recorder(client)
            turn = await client.send(f"tell me [[{uid}]]")
            await rec.until(lambda u: isinstance(u, ChatEvent) and u.role == "assistant")
            assert proxy.cut() >= 1
            await rec.until(turn_end(turn))
            return rec

    rec = run(scenario())
    events = rec.events
    assert_exactly_once_in_order(events)
    turn = user_ids(events)[0]
    pieces, final = reply_of(events, turn)
    assert pieces == final.content == "".join(chunks)
    assert rec.states[:2] == [ConnectionState.CONNECTING, ConnectionState.CONNECTED]
    assert ConnectionState.RECONNECTING in rec.states
    # The cut happened before the answer was complete, and it was completed afterwards.
    lost_at = next(
        i
        for i, u in enumerate(rec.items)
        if isinstance(u, StateChanged) and u.state is ConnectionState.RECONNECTING
    )
    assert rec.items.index(final) > lost_at


def test_messages_written_offline_are_delivered_once_in_order_after_the_reconnect(
    proxy: TcpProxy, fake_gemini: FakeGemini, uid: str
) -> None:
    fake_gemini.script(uid, Script(replies=[Reply(chunks=["ok ", "done"], delay_s=0.05)]))

    async def scenario() -> tuple[Recorder, list[str]]:
        async with ChatClient(signed_in(proxy.ws_url)) as client:
            rec = Recorder(client)
            await client.wait_for(ConnectionState.CONNECTED, timeout=10)
            proxy.refuse()
            proxy.cut()
            await client.wait_for(ConnectionState.RECONNECTING, timeout=5)
            ids = [await client.send(f"offline {n} [[{uid}]]") for n in range(3)]
            assert [m.id for m in client.pending] == ids
            await asyncio.sleep(0.6)  # a few refused attempts
            assert client.state is ConnectionState.RECONNECTING
            proxy.allow()
            await rec.until(turn_end(ids[-1]), timeout=60)
            assert client.pending == []
            return rec, ids

    rec, ids = run(scenario(), timeout=90)
    events = rec.events
    assert_exactly_once_in_order(events)
    assert user_ids(events) == ids
    assert [u.id for u in rec.items if isinstance(u, MessageAcked)] == ids
    for turn in ids:
        assert reply_of(events, turn)[1].content == "ok done"
    assert proxy.refused >= 1


def test_a_blackholed_link_is_found_by_the_heartbeat_and_recovered(
    proxy: TcpProxy, fake_gemini: FakeGemini, uid: str
) -> None:
    async def scenario() -> tuple[Recorder, str, float]:
        async with ChatClient(signed_in(proxy.ws_url)) as client:
            rec = Recorder(client)
            await client.wait_for(ConnectionState.CONNECTED, timeout=10)
            assert proxy.blackhole() == 1
            started = time.monotonic()
            # Written into the void: no ack comes back, so it stays queued and goes again.
            turn = await client.send(f"are you there [[{uid}]]")
            await client.wait_for(ConnectionState.RECONNECTING, timeout=5)
            noticed = time.monotonic() - started
            await rec.until(turn_end(turn))
            return rec, turn, noticed

    rec, turn, noticed = run(scenario())
    # Found within one ping interval plus the pong timeout (and some slack for a busy box).
    assert noticed < 1.0 + 1.0 + 1.5
    events = rec.events
    assert_exactly_once_in_order(events)
    assert user_ids(events) == [turn]
    assert reply_of(events, turn)[1].content == f"Echo: are you there [[{uid}]]"
    assert rec.states.count(ConnectionState.CONNECTED) == 2


def test_the_state_file_resumes_the_session_and_keeps_queued_messages(
    proxy: TcpProxy, fake_gemini: FakeGemini, uid: str, tmp_path: Path
) -> None:
    config = signed_in(proxy.ws_url, state_file=tmp_path / "state.json")

    async def first_run() -> tuple[str, int]:
        async with ChatClient(config) as client:
            rec = Recorder(client)
            turn = await client.send(f"first [[{uid}]]")
            await rec.until(turn_end(turn))
            assert client.session_id is not None and client.last_seq is not None
            return client.session_id, client.last_seq

    async def offline_run() -> str:
        async with ChatClient(config) as client:
            turn = await client.send(f"second [[{uid}]]")
            await asyncio.sleep(0.5)
            assert client.state is not ConnectionState.CONNECTED
            return turn

    async def resumed_run() -> Recorder:
        async with ChatClient(config) as client:
            rec = Recorder(client)
            assert [m.id for m in client.pending] == [second]
            await rec.until(turn_end(second))
            return rec

    session, last_seq = run(first_run())
    saved = json.loads(config.state_file.read_text())  # type: ignore[union-attr]
    assert saved == {"session_id": session, "last_seq": last_seq, "outbox": []}
    with proxy.refusing():
        second = run(offline_run())
    assert [m["id"] for m in json.loads(config.state_file.read_text())["outbox"]] == [second]  # type: ignore[union-attr]
    rec = run(resumed_run())
    # Only what came after the first run: nothing twice, nothing missed.
    assert_exactly_once_in_order(rec.events, start=last_seq + 1)
    assert user_ids(rec.events) == [second]
    assert json.loads(config.state_file.read_text())["outbox"] == []  # type: ignore[union-attr]


# ---------------------------------------------------------------- identity, on the real stack


class Clock:
    """Wall-clock time that a test can move ahead (an hour passes in an instant)."""

    def __init__(self) -> None:
        self.ahead_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead_s


def test_the_token_is_refreshed_before_it_expires_and_every_reconnect_sends_a_fresh_one(
    proxy: TcpProxy, fake_gemini: FakeGemini, uid: str
) -> None:
    user = sign_up_guest()
    refreshed: list[Tokens] = []
    clock = Clock()
    # The kept token has a minute left: inside the refresh margin, so it is refreshed first.
    source = RefreshingToken(
        IdentityToolkit(Endpoints.for_emulator(emulator_host(), API_KEY)),
        user.refresh_token,
        id_token=user.id_token,
        expires_at=time.time() + 60,
        on_refresh=refreshed.append,
        clock=clock,
    )

    async def scenario() -> tuple[Recorder, list[str], str | None]:
        async with ChatClient(replace(FAST, url=proxy.ws_url, auth=source)) as client:
            rec = Recorder(client)
            first = await client.send(f"one [[{uid}]]")
            await rec.until(turn_end(first))
            assert len(refreshed) == 1
            session = client.session_id
            clock.ahead_s = 3500  # the refreshed token now has minutes left
            assert proxy.cut() >= 1
            await rec.until(
                lambda u: isinstance(u, StateChanged) and u.state is ConnectionState.RECONNECTING
            )
            second = await client.send(f"two [[{uid}]]")
            await rec.until(turn_end(second))
            assert client.session_id == session
            return rec, [first, second], session

    rec, turns, _ = run(scenario())
    # One refresh per connection that needed one, all for the same user; the edge took them.
    assert len(refreshed) == 2
    assert {t.uid for t in refreshed} == {user.uid}
    # (Two tokens minted within one second are identical: the emulator's `iat` is in whole
    # seconds. That both came from the token endpoint is what shows a fresh one was sent.)
    assert all(t.expires_at > time.time() + 600 for t in refreshed)
    assert user_ids(rec.events) == turns
    assert not any(isinstance(u, SessionLost) for u in rec.items)


def test_a_kept_session_of_another_user_is_said_lost_and_a_new_one_begins(
    stack: Stack, fake_gemini: FakeGemini, uid: str, tmp_path: Path
) -> None:
    owner, other = sign_up_guest(), sign_up_guest()
    state = tmp_path / "state.json"

    async def owners_turn() -> str:
        async with ChatClient(replace(FAST, url=stack.ws_url, token=owner.id_token)) as client:
            rec = Recorder(client)
            await rec.until(turn_end(await client.send(f"my secret [[{uid}]]")))
            assert client.session_id is not None
            return client.session_id

    async def others_try(session: str) -> tuple[Recorder, SessionLost, str | None]:
        config = replace(
            FAST,
            url=stack.ws_url,
            token=other.id_token,
            session_id=session,
            last_seq=0,
            state_file=state,
        )
        async with ChatClient(config) as client:
            rec = Recorder(client)
            lost = await rec.until(lambda u: isinstance(u, SessionLost))
            await rec.until(turn_end(await client.send(f"mine [[{uid}]]")))
            return rec, lost, client.session_id  # type: ignore[return-value]

    session = run(owners_turn())
    rec, lost, new_session = run(others_try(session))
    assert lost.old_session_id == session
    assert lost.new_session_id == new_session != session
    # Said once, as news, not as an error; and not one event of the owner's session.
    assert not any(isinstance(u, ServerError) for u in rec.items)
    assert_exactly_once_in_order(rec.events)
    assert "my secret" not in repr(rec.events)
    # The state file now names the new session, so the next run continues that one.
    assert json.loads(state.read_text())["session_id"] == new_session


def test_a_bad_token_stops_with_the_reason_and_the_kept_session_is_not_dropped(
    stack: Stack, uid: str
) -> None:
    async def scenario() -> tuple[list[Update], str | None]:
        config = replace(FAST, url=stack.ws_url, token="not-a-token", session_id=f"s-{uid}")
        async with ChatClient(config) as client:
            rec = Recorder(client)
            await client.wait_for(ConnectionState.ERROR, timeout=15)
            return rec.items, client.session_id

    items, session = run(scenario())
    assert session == f"s-{uid}"
    assert not any(isinstance(u, SessionLost) for u in items)
    errors = [u for u in items if isinstance(u, StateChanged) and u.state is ConnectionState.ERROR]
    assert len(errors) == 1 and "refused" in errors[0].reason


# ---------------------------------------------------------------- against a scripted server

Handler = Callable[[ServerConnection, int], Awaitable[None]]
Served = tuple[str, list[dict[str, Any]]]


@contextlib.asynccontextmanager
async def scripted_server(handler: Handler, port: int = 0) -> AsyncIterator[Served]:
    """A WebSocket server that runs `handler(ws, n)` for its n-th connection; yields its URL
    and the `init` frames it received."""
    inits: list[dict[str, Any]] = []

    async def serve_one(ws: ServerConnection) -> None:
        inits.append(json.loads(await ws.recv()))
        await handler(ws, len(inits))

    async with serve(serve_one, "127.0.0.1", port) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{bound}/ws/chat", inits


def connected(session: str = "s-scripted", last_seq: int = 0) -> str:
    return json.dumps(
        {
            "type": "connected",
            "session_id": session,
            "last_seq": last_seq,
            "protocol": 1,
            "resumed": True,
        }
    )


def typing(seq: int, **extra: Any) -> str:
    return json.dumps({"type": "typing", "seq": seq, "turn_id": "t", "is_typing": True, **extra})


async def hold(ws: ServerConnection) -> None:
    with contextlib.suppress(Exception):
        await ws.wait_closed()


def test_close_1012_means_reconnect_at_once() -> None:
    async def handler(ws: ServerConnection, n: int) -> None:
        await ws.send(connected())
        if n == 1:
            await ws.close(1012, "service restart")
        else:
            await hold(ws)

    async def scenario() -> float:
        async with scripted_server(handler) as (url, inits):
            # A backoff this long would fail the timing below: 1012 must skip it.
            config = replace(FAST, url=url, initial_backoff_s=5.0)
            async with ChatClient(config) as client:
                await client.wait_for(ConnectionState.CONNECTED, timeout=5)
                started = time.monotonic()
                await client.wait_for(ConnectionState.RECONNECTING, timeout=5)
                await client.wait_for(ConnectionState.CONNECTED, timeout=5)
                assert len(inits) == 2
                return time.monotonic() - started

    assert run(scenario()) < 1.0


def test_a_gap_resumes_from_the_last_applied_seq_and_nothing_is_applied_twice() -> None:
    async def handler(ws: ServerConnection, n: int) -> None:
        if n == 1:
            await ws.send(connected(last_seq=3))
            await ws.send(typing(1))
            await ws.send(typing(3))  # 2 is missing: the client must not apply 3
        else:
            await ws.send(connected(last_seq=6))
            # A replay that repeats what was applied, a field and a kind this client does not
            # know: none of them may break the order.
            for seq in (1, 2, 3):
                await ws.send(typing(seq, extra_field={"x": 1}))
            await ws.send(json.dumps({"type": "future_kind", "seq": 4, "turn_id": "t"}))
            await ws.send(typing(5))
            await ws.send(json.dumps({"type": "future_frame", "whatever": True}))
            await ws.send(typing(6))
        await hold(ws)

    async def scenario() -> tuple[list[int], list[dict[str, Any]]]:
        async with scripted_server(handler) as (url, inits):
            config = replace(FAST, url=url, session_id="s-scripted", last_seq=0)
            async with ChatClient(config) as client:
                rec = Recorder(client)
                await rec.until(lambda u: getattr(u, "seq", 0) == 6, timeout=10)
                assert client.last_seq == 6
                return [e.seq for e in rec.events], inits

    seqs, inits = run(scenario())
    assert seqs == [1, 2, 3, 5, 6]
    assert [i.get("last_seq") for i in inits] == [0, 1]
    assert inits[1]["session_id"] == "s-scripted"


def test_it_gives_up_after_the_attempts_and_reconnect_starts_again() -> None:
    port = free_port()

    async def handler(ws: ServerConnection, n: int) -> None:
        await ws.send(connected())
        await hold(ws)

    async def scenario() -> list[StateChanged]:
        config = replace(
            FAST, url=f"ws://127.0.0.1:{port}/ws/chat", initial_backoff_s=0.05, max_attempts=3
        )
        async with ChatClient(config) as client:
            rec = Recorder(client)
            await client.wait_for(ConnectionState.ERROR, timeout=10)
            assert client.attempts == 3
            async with scripted_server(handler, port):
                client.reconnect()
                await client.wait_for(ConnectionState.CONNECTED, timeout=5)
                return [u for u in rec.items if isinstance(u, StateChanged)]

    changes = run(scenario())
    assert [(c.state.value, c.attempt) for c in changes] == [
        ("connecting", 0),
        ("reconnecting", 1),
        ("reconnecting", 2),
        ("reconnecting", 3),
        ("error", 0),
        ("connecting", 0),
        ("connected", 0),
    ]
    assert "after 3 attempts" in changes[4].reason


def test_a_message_too_large_for_one_frame_is_refused_before_it_is_queued() -> None:
    async def scenario() -> None:
        client = ChatClient(replace(FAST, url="ws://127.0.0.1:9/ws/chat"))
        with pytest.raises(ValueError, match="over 65536 bytes"):
            await client.send("x" * 70_000)
        with pytest.raises(ValueError):
            await client.send("")
        assert client.pending == []

    run(scenario())


def test_each_connection_asks_for_a_token_again() -> None:
    class Counting:
        calls = 0

        def fresh_token(self, force: bool = False) -> str:
            self.calls += 1
            return f"token-{self.calls}"

    async def handler(ws: ServerConnection, n: int) -> None:
        await ws.send(connected())
        if n == 1:
            await ws.close(1012, "service restart")
        else:
            await hold(ws)

    async def scenario() -> list[dict[str, Any]]:
        async with (
            scripted_server(handler) as (url, inits),
            ChatClient(replace(FAST, url=url, auth=Counting())) as client,
        ):
            await client.wait_for(ConnectionState.CONNECTED, timeout=5)
            await client.wait_for(ConnectionState.RECONNECTING, timeout=5)
            await client.wait_for(ConnectionState.CONNECTED, timeout=5)
            return inits

    inits = run(scenario())
    assert [i["token"] for i in inits] == ["token-1", "token-2"]
    assert inits[1]["session_id"] == "s-scripted"


def test_refused_with_and_without_the_session_means_the_token_and_the_session_is_kept() -> None:
    class Source:
        def __init__(self) -> None:
            self.forced: list[bool] = []

        def fresh_token(self, force: bool = False) -> str:
            self.forced.append(force)
            return f"token-{len(self.forced)}"

    async def handler(ws: ServerConnection, n: int) -> None:
        await ws.send(json.dumps({"type": "error", "code": "unauthorized", "message": "no"}))
        await ws.close(1008, "unauthorized")

    source = Source()

    async def scenario() -> tuple[list[dict[str, Any]], list[Update], str | None]:
        async with scripted_server(handler) as (url, inits):
            config = replace(FAST, url=url, auth=source, session_id="kept-session", last_seq=3)
            async with ChatClient(config) as client:
                rec = Recorder(client)
                await client.wait_for(ConnectionState.ERROR, timeout=10)
                return inits, rec.items, client.session_id

    inits, items, session = run(scenario())
    # Kept session, a new one, then both again with a token refreshed on purpose; no more.
    assert [i.get("session_id") for i in inits] == ["kept-session", None, "kept-session", None]
    assert [i["token"] for i in inits] == ["token-1", "token-2", "token-3", "token-4"]
    assert source.forced == [False, False, True, True]
    assert session == "kept-session"
    assert not any(isinstance(u, SessionLost) for u in items)


def test_rate_limited_at_init_waits_as_told_and_keeps_the_session() -> None:
    async def handler(ws: ServerConnection, n: int) -> None:
        if n == 1:
            await ws.send(
                json.dumps(
                    {
                        "type": "error",
                        "code": "rate_limited",
                        "message": "too many sockets; wait a little",
                        "retry_after_s": 0.8,
                    }
                )
            )
            await ws.close(1008, "too many sockets")
        else:
            await ws.send(connected(session="kept-session"))
            await hold(ws)

    async def scenario() -> tuple[list[dict[str, Any]], list[Update], float]:
        async with scripted_server(handler) as (url, inits):
            config = replace(FAST, url=url, session_id="kept-session", initial_backoff_s=0.05)
            async with ChatClient(config) as client:
                rec = Recorder(client)
                started = time.monotonic()
                await client.wait_for(ConnectionState.CONNECTED, timeout=10)
                return inits, rec.items, time.monotonic() - started

    inits, items, took = run(scenario())
    assert took >= 0.8 * 0.9  # retry_after_s, not the 0.05 s backoff (less its jitter)
    assert [i.get("session_id") for i in inits] == ["kept-session", "kept-session"]
    assert not any(isinstance(u, SessionLost) for u in items)
    assert any(isinstance(u, ServerError) and u.frame.code == "rate_limited" for u in items)
