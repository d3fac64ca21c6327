"""The row of bench/RESULTS.md's summary table that a benchmark run updates.

Every bench ends its run by printing, as one markdown line, the summary-table row its
figures belong to: what is measured (and the issue), the target, the figure it just
measured, the raw baseline measured in the same run, their ratio, whether the target is
met, the command that ran, the machine and the date, and a link to the section of
RESULTS.md that explains the figure. Updating the table is pasting that line over the
old one (and the run's details into the section). The columns are ``COLUMNS``.

Only the standard library here, and the machine described lazily: bench/milvus_engines.py
also runs as a script from a scratch venv that has no ``app`` package.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

COLUMNS = (
    "what (issue)",
    "target",
    "latest figure",
    "raw baseline, same run",
    "ratio",
    "met?",
    "command",
    "machine, date",
    "section",
)
#: A cell with nothing to say: no target set, no baseline measured, no ratio computable.
NONE = "-"


def header() -> str:
    """The table's header and separator lines."""
    return "| " + " | ".join(COLUMNS) + " |\n|" + " --- |" * len(COLUMNS)


def anchor(heading: str) -> str:
    """The fragment GitHub gives a heading's link: lower case, punctuation dropped, each
    space a hyphen (so " -> " becomes "---")."""
    kept = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return "#" + kept.replace(" ", "-")


def cell(value: object) -> str:
    """A table cell: None is ``NONE``, a bool is yes/no, and nothing may end the cell."""
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = " ".join(str(value).split())
    return text.replace("|", "\\|") or NONE


def ratio(value: float, baseline: float, *, percent: bool = False, digits: int = 1) -> str:
    """``value / baseline`` as the sections write it: "3.5x", or "122.5 %" with
    ``percent`` (for speeds, where higher is better); ``NONE`` without a baseline."""
    if not baseline or baseline != baseline or value != value:  # zero or NaN
        return NONE
    if percent:
        return f"{100 * value / baseline:.{digits}f} %"
    return f"{value / baseline:.{digits}f}x"


def run_command(args: Sequence[str] | None = None, program: str | None = None) -> str:
    """How this run was started, as RESULTS.md writes commands: ``.venv/bin/python -m
    bench.x ARGS``. ``args`` default to sys.argv's; ``program`` to this process' own
    (the interpreter, relative to the working directory when inside it, and ``-m module``
    or the script). Environment variables set before the command are not visible here."""
    if program is None:
        program = _program()
    args = sys.argv[1:] if args is None else args
    return " ".join([program, *(shlex.quote(a) for a in args)])


def _program() -> str:
    python = Path(sys.executable)
    try:
        python = python.relative_to(Path.cwd())
    except ValueError:
        pass
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        return f"{python} -m {spec.name}"
    return f"{python} {sys.argv[0]}"


def machine_and_date(now: datetime | None = None) -> str:
    """The CPU as bench.ack_latency.machine() describes it, and today's date (UTC)."""
    try:
        from bench.ack_latency import machine
    except ImportError:  # a scratch venv without the app's packages: only what Python knows
        cpu = f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs"
    else:
        cpu = machine()["cpu"]
    return f"{cpu}, {(now or datetime.now(UTC)).strftime('%Y-%m-%d')}"


def summary_row(
    what: str,
    target: str | None,
    figure: str,
    baseline: str | None,
    ratio: str | None,
    met: bool | str | None,
    section: str,
    *,
    command: str | None = None,
    machine: str | None = None,
) -> str:
    """One markdown row of the summary table. ``command`` and ``machine`` default to this
    process' (``run_command()``, ``machine_and_date()``); ``section`` is the heading of the
    section of RESULTS.md the row links to."""
    cells = [
        what,
        target,
        figure,
        baseline,
        ratio,
        met,
        f"`{run_command() if command is None else command}`",
        machine_and_date() if machine is None else machine,
        f"[{cell(section)}]({anchor(section)})",
    ]
    return "| " + " | ".join(cell(c) for c in cells) + " |"


def print_row(*args: object, **kwargs: object) -> str:
    """Prints ``summary_row(*args, **kwargs)`` under a line saying where it goes, and
    returns it."""
    row = summary_row(*args, **kwargs)  # type: ignore[arg-type]
    print(f"\nbench/RESULTS.md summary row:\n{row}", flush=True)
    return row
