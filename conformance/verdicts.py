"""Autobahn's verdicts (reports/servers/index.json), read and printed as a table."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# Autobahn's verdicts, best first. NON-STRICT and INFORMATIONAL are passes: the RFC allows the
# behaviour (e.g. failing invalid UTF-8 at the end of a fragmented message rather than at once).
# Anything else (FAILED, and for the closing handshake WRONG CODE, UNCLEAN, FAILED BY CLIENT)
# is a failure.
PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}
VERDICTS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]


def rank(verdict: str) -> int:
    return VERDICTS.index(verdict) if verdict in VERDICTS else len(VERDICTS)


@dataclass(frozen=True)
class Verdict:
    case: str
    behavior: str
    close: str
    remote_close_code: int | None
    duration_ms: int

    @property
    def key(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.case.split("."))

    @property
    def failed(self) -> bool:
        return self.behavior not in PASSING or self.close not in PASSING

    @property
    def worst(self) -> str:
        """The case's verdict: the worse of its behaviour and its closing handshake."""
        worst = max(self.behavior, self.close, key=rank)
        return worst if worst in VERDICTS else "FAILED"


def read(outdir: Path, agent: str) -> list[Verdict]:
    index = json.loads((outdir / "index.json").read_text())
    rows = [
        Verdict(
            case=case,
            behavior=entry["behavior"],
            close=entry["behaviorClose"],
            remote_close_code=entry.get("remoteCloseCode"),
            duration_ms=int(entry.get("duration") or 0),
        )
        for case, entry in index[agent].items()
    ]
    return sorted(rows, key=lambda row: row.key)


SECTIONS = {
    "1": "framing",
    "2": "pings and pongs",
    "3": "reserved bits",
    "4": "opcodes",
    "5": "fragmentation",
    "6": "UTF-8 handling",
    "7": "close handling",
    "9": "limits (up to 64 KiB)",
    "10": "auto-fragmentation",
}


def group_of(case: str) -> str:
    """1.1.3 -> 1; 10.1.1 -> 10: Autobahn's sections."""
    return case.split(".")[0]


def table(rows: list[Verdict], *, every_case: bool = False) -> str:
    """A Markdown table of verdict counts per section, then every case that did not pass."""
    groups: dict[str, Counter[str]] = {}
    for row in rows:
        groups.setdefault(group_of(row.case), Counter())[row.worst] += 1
    head = "| section | | cases | " + " | ".join(VERDICTS) + " |"
    lines = [head, "|" + "---|" * (len(VERDICTS) + 3)]
    total: Counter[str] = Counter()
    for name in sorted(groups, key=lambda g: tuple(int(p) for p in g.split("."))):
        counts = groups[name]
        total.update(counts)
        cells = " | ".join(str(counts[v] or "") for v in VERDICTS)
        lines.append(f"| {name} | {SECTIONS.get(name, '')} | {sum(counts.values())} | {cells} |")
    cells = " | ".join(f"**{total[v]}**" for v in VERDICTS)
    lines.append(f"| all | | **{sum(total.values())}** | {cells} |")
    shown = rows if every_case else [row for row in rows if row.failed]
    if shown:
        lines += ["", "| case | behavior | close | close code | ms |", "|---|---|---|---|---|"]
        lines += [
            f"| {r.case} | {r.behavior} | {r.close} | {r.remote_close_code} | {r.duration_ms} |"
            for r in shown
        ]
    return "\n".join(lines)
