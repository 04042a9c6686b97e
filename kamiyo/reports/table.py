"""Aligned plain-text tables for the reports: a header, a rule, one line per row, no trailing spaces."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

MISSING = "-"


def _cell(value: object) -> str:
    if value is None:
        return MISSING
    return str(value).replace("\n", " ")  # a cell is one line, whatever a stored value holds


def render_table(headers: Sequence[str], rows: Iterable[Sequence[object]], right: Collection[int] = ()) -> str:
    """Columns as wide as their widest cell, two spaces apart; the columns in `right` (numbers) right-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths))]
        return "  ".join(parts).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out) + "\n"
