"""The one table `make bench` prints (Markdown, so the README can hold it) and the JSON file."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TARGET_SIZE = 5000


@dataclass
class Row:
    scenario: str
    figure: str
    ours: str
    bare: str = ""
    bare_ratio: str = ""
    sio: str = ""
    sio_ratio: str = ""
    fs: str = ""
    fs_ratio: str = ""
    target: str = ""
    met: str = ""


HEADER = Row(
    "scenario",
    "figure",
    "deploychat",
    "websockets",
    "ours/ws",
    "socketio",
    "ours/sio",
    "flask-sock",
    "ours/fs",
    "target",
    "met",
)


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}"
    return str(value)


def pair(d: dict[str, Any], *keys: str) -> str:
    return " / ".join(fmt(d.get(k)) for k in keys)


def ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs <= 0:
        return ""
    value = ours / theirs
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.2g}x"


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("yes" if ok else "NO")


def capacity_rows(results: dict[str, Any]) -> list[Row]:
    ours = results.get("capacity")
    if not ours:
        return []
    peers = results.get("peers") or {}
    by_size = {
        name: {s["size"]: s for s in (r or {}).get("steps", [])}
        for name, r in (
            ("bare", peers.get("websockets")),
            ("sio", peers.get("socketio")),
            ("fs", peers.get("flask-sock")),
        )
    }
    rows: list[Row] = []
    for step in ours["steps"]:
        size = step["size"]
        bare, sio = by_size["bare"].get(size), by_size["sio"].get(size)
        fs = by_size["fs"].get(size)
        label = f"1. idle, {size} sockets"
        at_target = size == TARGET_SIZE

        def add(
            figure: str,
            show: Callable[[dict[str, Any]], str],
            number: Callable[[dict[str, Any]], float | None] | None,
            target: str = "",
            ok: bool | None = None,
            label: str = label,
            step: dict[str, Any] = step,
            bare: dict[str, Any] | None = bare,
            sio: dict[str, Any] | None = sio,
            fs: dict[str, Any] | None = fs,
        ) -> None:
            row = Row(label, figure, show(step), target=target, met=verdict(ok))
            for peer, attr in ((bare, "bare"), (sio, "sio"), (fs, "fs")):
                if peer is None:
                    continue
                setattr(row, attr, show(peer))
                if number is not None:
                    setattr(row, f"{attr}_ratio", ratio(number(step), number(peer)))
            rows.append(row)

        add("sockets held", lambda s: f"{s['held']}/{s['size']}", None)
        kb_target, kb_ok = "", None
        if at_target and bare is not None:
            kb_target = "<= 2x websockets"
            kb_ok = step["kb_per_socket"] <= 2 * bare["kb_per_socket"]
        add(
            "RSS per socket, KB",
            lambda s: fmt(s["kb_per_socket"]),
            lambda s: s["kb_per_socket"],
            kb_target,
            kb_ok,
        )
        add("RSS, MB (baseline)", lambda s: f"{fmt(s['rss_mb'])} ({fmt(s['base_rss_mb'])})", None)
        add(
            "idle CPU, % of a core",
            lambda s: fmt(s["idle_cpu_percent"]),
            lambda s: s["idle_cpu_percent"],
        )
        spread_ok = step["spread"]["p99"] < 50 if at_target and step["spread"]["p99"] else None
        add(
            "ping p50 / p99 ms, 200/s spread",
            lambda s: pair(s["spread"], "p50", "p99"),
            lambda s: s["spread"]["p99"],
            "p99 < 50" if at_target else "",
            spread_ok,
        )
        burst_ok = step["burst"]["p99"] < 250 if at_target and step["burst"]["p99"] else None
        add(
            "ping p50 / p99 ms, all at once",
            lambda s: pair(s["burst"], "p50", "p99"),
            lambda s: s["burst"]["p99"],
            "p99 < 250" if at_target else "",
            burst_ok,
        )
    return rows


def fanout_rows(r: dict[str, Any] | None) -> list[Row]:
    if not r:
        return []
    label = f"2. fan-out, {r['sessions']} sessions"
    p99 = r["write_to_frame_ms"]["p99"]
    reached = r["asked_rate"] and r["writer_rate"] >= 0.95 * r["asked_rate"]
    reads, writes = r.get("reads_per_piece"), r.get("writes_per_piece")
    return [
        Row(
            label,
            "events written a second: reached (asked)",
            f"{fmt(r['writer_rate'])} ({fmt(r['asked_rate'])})",
            target="reached >= 95 % of asked",
            met=verdict(bool(reached)),
        ),
        Row(
            label,
            "write→frame p50 / p95 / p99 ms (clock starts before the write)",
            pair(r["write_to_frame_ms"], "p50", "p95", "p99"),
            target="p99 < 100",
            met=verdict(p99 is not None and p99 < 100),
        ),
        # One transaction per streamed piece (pieces coalesced to one per 150 ms per turn):
        # the session and the turn read, the event created, both updated. At Firestore's list
        # prices (reads $0.06, writes $0.18 per 100,000) about $0.0007 per 100 pieces; the
        # edge adds 1 read per append (the session document, with its tail) and listening edge
        # instance.
        Row(
            label,
            "Firestore reads / writes per streamed piece",
            f"{fmt(reads)} / {fmt(writes)}",
            target="<= 2.2 / 3 (one transaction)",
            met=verdict(reads is not None and writes is not None and reads <= 2.2 and writes <= 3),
        ),
        Row(
            label,
            "Firestore reads / writes per turn start (begin)",
            f"{fmt(r.get('reads_per_begin'))} / {fmt(r.get('writes_per_begin'))}",
        ),
        Row(
            label,
            "events lost / repeated",
            f"{r['lost']} / {r['repeated']}",
            target="0 / 0",
            met=verdict(r["lost"] == 0 and r["repeated"] == 0 and r["written"] > 0),
        ),
        Row(label, "TurnLog.append p50 / p99 ms", pair(r["append_ms"], "p50", "p99")),
    ]


def turn_rows(r: dict[str, Any] | None) -> list[Row]:
    if not r:
        return []
    i, s, o = r["instant"], r["streaming"], r["overhead_on_model"]
    a = "3. turn, instant model"
    b = "3. turn, streaming model"
    ack99, first50 = i["ack_ms"]["p99"], i["first_piece_ms"]["p50"]
    over = o["first_piece_p50_ms"]
    push = r["pubsub_push_ms"]
    closes: dict[str, int] | None = r.get("server_close_codes")
    return [
        Row(a, "turns completed / sent", f"{i['completed']}/{i['started']}"),
        Row(
            a,
            "chat→ack p50 / p99 ms",
            pair(i["ack_ms"], "p50", "p99"),
            target="p99 < 50",
            met=verdict(ack99 is not None and ack99 < 50),
        ),
        Row(
            a,
            "chat→first piece p50 / p99 ms",
            pair(i["first_piece_ms"], "p50", "p99"),
            target="p50 < 150",
            met=verdict(first50 is not None and first50 < 150),
        ),
        Row(a, "chat→final p50 / p99 ms", pair(i["final_ms"], "p50", "p99")),
        Row(a, "of which chat→model request p50 / p99", pair(i["to_model_ms"], "p50", "p99")),
        Row(b, "turns completed / sent", f"{s['completed']}/{s['started']}"),
        Row(
            "3. turn, both models",
            "sockets the edge closed during the turns",
            fmt(sum(closes.values())) if closes is not None else "-",
            target="0",
            met=verdict(None if closes is None else not closes),
        ),
        Row(b, "chat→first piece p50 / p99 ms", pair(s["first_piece_ms"], "p50", "p99")),
        Row(b, "chat→final p50 / p99 ms", pair(s["final_ms"], "p50", "p99")),
        Row(
            b,
            "overhead on the model's first token p50 / p99 ms",
            f"{fmt(over)} / {fmt(o['first_piece_p99_ms'])}",
            target="p50 < 100",
            met=verdict(over is not None and over < 100),
        ),
        Row("3. Pub/Sub emulator alone", "publish→push p50 / p99 ms", pair(push, "p50", "p99")),
    ]


def throughput_rows(r: dict[str, Any] | None) -> list[Row]:
    if not r:
        return []
    rows = []
    for step in r["steps"]:
        cpu = step["cpu_percent"]
        rows.append(
            Row(
                f"4. throughput, {r['sessions']} sessions",
                f"offered {fmt(step['rate'])}/s: done/s; final p50 / p99 ms; CPU % edge / fn "
                "/ pubsub / firestore / bench",
                f"{fmt(step['achieved_rate'])}; {pair(step['final_ms'], 'p50', 'p99')}; "
                + " / ".join(
                    fmt(cpu.get(k))
                    for k in ("edge", "function", "pubsub", "firestore", "bench+fake model")
                ),
                target="saturated: " + ", ".join(step["saturated"]) if "saturated" in step else "",
            )
        )
    neck = r.get("bottleneck")
    rows.append(
        Row(
            f"4. throughput, {r['sessions']} sessions",
            "sustained turns a second; bottleneck",
            f"{fmt(r['sustained_rate'])}; "
            + (f"{neck['process']} at {fmt(neck['cpu_percent'])}% CPU" if neck else "not reached"),
        )
    )
    return rows


def slow_reader_rows(results: dict[str, Any]) -> list[Row]:
    r = results.get("slow_readers")
    if not r:
        return []
    label = f"6. {r['sockets']} sockets, {r['stalled']} never read"
    # What the edge holds for a socket that does not read is bounded by its write limit: the
    # frame being written (at most the 64 KiB frame limit) and the kernel's buffers.
    per_stalled_kb = r["growth_mb"] * 1024 / max(1, r["stalled"])
    waited = r.get("waited_s", 0) >= 10
    spread99, burst99 = r["spread"]["p99"], r["burst"]["p99"]
    return [
        Row(label, "sockets held: readers + stalled", f"{r['readers']} + {r['stalled']}"),
        Row(
            label,
            "edge RSS, MB: all open / peak while they stall / after",
            f"{fmt(r['rss_mb'])} / {fmt(r['rss_peak_mb'])} / {fmt(r['rss_after_mb'])}",
        ),
        Row(
            label,
            "RSS growth while they stall, MB; KB per stalled socket",
            f"{fmt(r['growth_mb'])}; {fmt(per_stalled_kb)}",
            target="< 64 KB per stalled socket" if waited else "",
            met=verdict(per_stalled_kb < 64) if waited else "",
        ),
        Row(
            label,
            f"stalled sockets dropped by the edge after {fmt(float(r.get('waited_s', 0)))} s",
            f"{r['stalled_dropped']}/{r['stalled']}",
            target="all (10 s write limit)" if waited else "",
            met=verdict(r["stalled_dropped"] == r["stalled"]) if waited else "",
        ),
        Row(
            label,
            "readers' ping p50 / p99 ms, 200/s spread",
            pair(r["spread"], "p50", "p99"),
            target="p99 < 50",
            met=verdict(spread99 is not None and spread99 < 50 and r["spread"]["lost"] == 0),
        ),
        Row(
            label,
            "readers' ping p50 / p99 ms, all at once",
            pair(r["burst"], "p50", "p99"),
            target="p99 < 250",
            met=verdict(burst99 is not None and burst99 < 250 and r["burst"]["lost"] == 0),
        ),
        Row(
            label,
            "readers closed by the edge",
            str(r["readers_closed"]),
            target="0",
            met=verdict(r["readers_closed"] == 0),
        ),
        *drain_rows(r.get("drain")),
    ]


def drain_rows(d: dict[str, Any] | None) -> list[Row]:
    if not d:
        return []
    label = f"7. drain, {d['readers']} readers + {d['stalled']} stalled"
    last = d["last_s"]
    return [
        Row(
            label,
            "readers closed 1012 after SIGTERM; left open",
            f"{d['readers_1012']}/{d['readers']}; {d['readers_left_open']}",
            target="all; 0",
            met=verdict(d["readers_1012"] == d["readers"] and d["readers_left_open"] == 0),
        ),
        Row(
            label,
            "SIGTERM→1012 p50 / p99 ms; last, s",
            f"{pair(d['after'], 'p50', 'p99')}; {f'{last:.2f}' if last is not None else '-'}",
            target="last < 2 s",
            met=verdict(last is not None and last < 2.0),
        ),
        Row(
            label,
            f"stalled sockets dropped {fmt(float(d['stalled_read_after_s']))} s after SIGTERM",
            f"{d['stalled_dropped']}/{d['stalled']}",
            target="all",
            met=verdict(d["stalled_dropped"] == d["stalled"]),
        ),
    ]


def build_rows(results: dict[str, Any]) -> list[Row]:
    return [
        *capacity_rows(results),
        *fanout_rows(results.get("fanout")),
        *turn_rows(results.get("turns")),
        *throughput_rows(results.get("throughput")),
        *slow_reader_rows(results),
    ]


def table(rows: list[Row]) -> str:
    cells = [list(vars(r).values()) for r in [HEADER, *rows]]
    # Peer columns only when some row has a peer figure.
    keep = [i for i in range(len(cells[0])) if any(c[i] for c in cells[1:]) or i < 3]
    cells = [[c[i] for i in keep] for c in cells]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    out = [line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(c) for c in cells[1:]]
    return "\n".join(out)


def write(results_dir: Path, document: dict[str, Any]) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = results_dir / f"bench-{stamp}.json"
    text = json.dumps(document, indent=2, default=str)
    path.write_text(text)
    (results_dir / "latest.json").write_text(text)
    return path
