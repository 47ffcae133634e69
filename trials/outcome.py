"""What every trial reports, the same way: cases tried, cases survived, what was lost, the wall
time and the command that re-runs it; printed as a table row and optionally as JSON."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TrialOutcome:
    """One trial's figures. `lost` lists each thing lost or duplicated, in words: a trial
    passes only when it is empty and every case survived."""

    name: str
    cases: int  # faults injected / batches tried / kills made
    survived: int  # cases after which the system ended in the state the trial demands
    lost: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    command: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.lost and self.survived == self.cases and self.cases > 0

    def row(self) -> str:
        """The trials/README.md table row."""
        lost = "nothing" if not self.lost else f"{len(self.lost)}: {self.lost[0]}"
        return (
            f"| {self.name} | {self.cases} | {self.survived} | {lost} | "
            f"{self.wall_s:.0f} s | `{self.command}` |"
        )


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    parser.add_argument("--json", type=Path, help="also write the outcome as JSON here")
    parser.add_argument(
        "--exchange",
        choices=("binanceusdm", "bybit"),
        default="binanceusdm",
        help="the ccxt client that talks to the replay exchange, which speaks both "
        "(default binanceusdm)",
    )


def run_and_report(trial: Callable[[], TrialOutcome], json_path: Path | None = None) -> int:
    """Run, time, print the figures; 0 when nothing was lost, 1 otherwise."""
    start = time.perf_counter()
    outcome = trial()
    outcome.wall_s = time.perf_counter() - start
    print(
        f"\n{outcome.name}: {outcome.cases} cases, {outcome.survived} survived, "
        f"{len(outcome.lost)} lost, {outcome.wall_s:.1f} s"
    )
    for key, value in outcome.details.items():
        print(f"  {key}: {value}")
    for what in outcome.lost[:20]:
        print(f"  LOST: {what}")
    print(outcome.row())
    if json_path:
        json_path.write_text(json.dumps(asdict(outcome) | {"passed": outcome.passed}, indent=2))
    return 0 if outcome.passed else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run a trial: python -m trials.<name> --help")
