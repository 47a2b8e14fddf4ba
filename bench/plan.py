"""How big and how long each scenario runs: the full run, and the quick one the smoke test uses.

Every load loop is bounded by these counts and durations, so a run always ends by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCENARIOS = ("capacity", "peers", "fanout", "turns", "throughput", "slow_readers")


@dataclass
class Plan:
    # Client processes that hold the load's sockets.
    workers: int = 4
    # 1 and 5: idle capacity (ours, then the peers) at each size, in one growing set of sockets.
    sizes: list[int] = field(default_factory=lambda: [1000, 2500, 5000, 7500, 10000])
    warm: int = 20  # sockets open when the baseline RSS is read
    heartbeat_s: float = 30.0  # every socket pings this often while idle (PROTOCOL.md)
    settle_s: float = 3.0
    idle_s: float = 10.0  # CPU and memory are read over this idle window
    spread_rate: float = 200.0  # pings a second, spread over time
    spread_s: float = 10.0
    bursts: int = 3  # rounds of "every socket pings at once", after one warm-up round
    open_concurrency: int = 64  # handshakes in flight per client process
    # 2: fan-out.
    fanout_sessions: int = 1000
    fanout_rate: float = 1.0  # events a second per session
    fanout_s: float = 30.0
    writer_processes: int = 3
    writer_threads: int = 16
    # 3: turn latency: turns one at a time (the next when the last has ended, after a pause of
    # about turn_pause_s), each on the next of turn_sessions sessions. One at a time because
    # the Pub/Sub emulator pushes at most 2 requests at once (hard-coded in it): with more in
    # flight, what is measured is its queue, not the pipeline (queues are scenario 4's).
    turn_sessions: int = 50
    instant_turns: int = 60
    streaming_turns: int = 16
    turn_pause_s: float = 0.4
    push_probes: int = 50  # Pub/Sub emulator push latency, measured on its own
    # 4: throughput.
    throughput_sessions: int = 200
    throughput_rates: list[float] = field(
        default_factory=lambda: [5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 60.0, 80.0]
    )
    step_s: float = 10.0
    turn_timeout_s: float = 60.0
    # 6: sockets that never read (bench/scenarios/slow_readers.py).
    slow_sockets: int = 5000
    slow_share: float = 0.1
    # Frames each stalled socket sends, all answered (~300 bytes each), none read: 12 KB, three
    # times its receive buffer, so answers wait in the edge's kernel. Not a flood: 500 sockets
    # sending 400 each is 200,000 frames at once, which saturates the worker's core whatever
    # it does (README, *Performance*).
    slow_frames: int = 40
    slow_wait_s: float = 14.0  # from the stall on: past the edge's 10 s write limit
    # Then the edge worker's SIGTERM with the readers open and new stalled sockets stalling.
    drain: bool = True
    # The drain's stalled sockets send this many: more answers than the kernel's buffers on
    # both ends hold (send buffer 128 KiB), so the edge's writes to them block.
    drain_frames: int = 600
    drain_stall_s: float = 2.0  # stalled for this long before the SIGTERM: writes to them block
    drain_wait_s: float = 15.0  # the most it waits for every reader's close
    # Stalled sockets are read back this long after the signal: the 1 s a drain gives a close
    # frame, the 5 s closing handshake, a second of margin.
    drain_stalled_s: float = 7.0
    scenarios: tuple[str, ...] = SCENARIOS


def quick_plan() -> Plan:
    """Tiny sizes and short windows: proves every scenario runs, measures little."""
    return Plan(
        workers=2,
        sizes=[50],
        warm=10,
        settle_s=0.5,
        idle_s=0.5,
        spread_s=0.5,
        bursts=1,
        fanout_sessions=50,
        fanout_s=2.0,
        writer_processes=1,
        writer_threads=4,
        turn_sessions=10,
        instant_turns=6,
        streaming_turns=2,
        turn_pause_s=0.1,
        push_probes=5,
        throughput_sessions=20,
        throughput_rates=[2.0, 5.0],
        step_s=2.0,
        turn_timeout_s=30.0,
        slow_sockets=50,
        slow_frames=100,
        drain_frames=100,
        slow_wait_s=1.0,
    )
