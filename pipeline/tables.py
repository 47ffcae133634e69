"""Markdown tables: the one place that knows their syntax (reports, metadata, the CLI)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def markdown_table(
    header: Sequence[str], rows: Iterable[Sequence[object]], align: str | None = None
) -> str:
    """A compact pipe table; `align` has one letter per column, `l` or `r` (default all `l`).

    Compact rather than padded (tabulate's style): the cells are read in Dagster's metadata
    panel and in terminals as often as rendered, and padding only widens them.
    """
    align = align or "l" * len(header)
    if len(align) != len(header):
        raise ValueError(f"{len(header)} columns but {len(align)} alignment letters")
    rule = "|" + "".join("---:|" if a == "r" else "---|" for a in align)
    lines = ["| " + " | ".join(header) + " |", rule]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a row has {len(row)} cells, the header {len(header)}")
        # A pipe inside a cell (|ρ|) would end it: escaped, as GitHub's tables read it.
        lines.append("| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines)
