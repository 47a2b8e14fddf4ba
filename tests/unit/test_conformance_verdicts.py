"""The conformance table: Autobahn's index.json read, failures found, the table printed."""

from __future__ import annotations

import json
from pathlib import Path

from conformance import cases, verdicts


def write_index(path: Path, entries: dict[str, tuple[str, str]]) -> None:
    index = {
        "edge": {
            case: {
                "behavior": behavior,
                "behaviorClose": close,
                "duration": 3,
                "remoteCloseCode": 1000,
                "reportfile": f"edge_case_{case}.json",
            }
            for case, (behavior, close) in entries.items()
        }
    }
    (path / "index.json").write_text(json.dumps(index))


def test_passes_and_failures(tmp_path: Path) -> None:
    write_index(
        tmp_path,
        {
            "10.1.1": ("OK", "OK"),
            "1.1.2": ("OK", "OK"),
            "3.2": ("NON-STRICT", "OK"),
            "7.1.6": ("INFORMATIONAL", "INFORMATIONAL"),
            "7.9.1": ("OK", "WRONG CODE"),
            "7.3.6": ("OK", "UNCLEAN"),
            "5.1": ("FAILED", "OK"),
        },
    )
    rows = verdicts.read(tmp_path, "edge")
    assert [r.case for r in rows] == ["1.1.2", "3.2", "5.1", "7.1.6", "7.3.6", "7.9.1", "10.1.1"]
    assert [r.case for r in rows if r.failed] == ["5.1", "7.3.6", "7.9.1"]
    assert {r.case: r.worst for r in rows}["7.9.1"] == "FAILED"
    assert {r.case: r.worst for r in rows}["3.2"] == "NON-STRICT"

    text = verdicts.table(rows)
    assert "| 7 | close handling | 3 |  |  | 1 |  | 2 |" in text
    assert "| all | | **7** | **2** | **1** | **1** | **0** | **3** |" in text
    # Every failure gets a row of its own, and no passing case does.
    assert "| 7.9.1 | OK | WRONG CODE | 1000 | 3 |" in text
    assert "| 1.1.2 |" not in text
    assert "| 1.1.2 |" in verdicts.table(rows, every_case=True)


def test_the_spec_leaves_out_only_messages_over_the_limit() -> None:
    spec = cases.spec(agent="edge", url="ws://x/ws/echo", outdir="out", cases=cases.FULL)
    assert spec["cases"] == ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]
    excluded = spec["exclude-cases"]
    assert isinstance(excluded, list)
    assert all(case.startswith("9.") for case in excluded)
    assert "9.1.1" not in excluded and "9.2.1" not in excluded  # 64 KiB: at the limit, kept
    assert not any(case.startswith(("9.7", "9.8")) for case in excluded)
    # make test's subset keeps every closing-handshake case.
    assert "7.*" in cases.QUICK
