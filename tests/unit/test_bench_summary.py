"""bench/summary.py: the summary row every bench prints, and bench/RESULTS.md's table it
belongs to (every link lands on a heading, every bench names a section that exists)."""

from __future__ import annotations

import ast
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench import summary

BENCH = Path(summary.__file__).resolve().parent
RESULTS = BENCH / "RESULTS.md"


def cells(row: str) -> list[str]:
    """A markdown row's cells, split on the pipes that are not escaped."""
    assert row.startswith("| ") and row.endswith(" |"), row
    return [c.strip() for c in re.split(r"(?<!\\)\|", row[1:-1])]


def headings() -> set[str]:
    in_code = False
    out = set()
    for line in RESULTS.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif line.startswith("#") and not in_code:
            out.add(summary.anchor(line.lstrip("#")))
    return out


def table_rows() -> list[str]:
    lines = RESULTS.read_text(encoding="utf-8").splitlines()
    start = lines.index(summary.header().splitlines()[0])
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def test_a_row_has_the_columns_in_order() -> None:
    row = summary.summary_row(
        "callback acknowledgement at 200 msg/s, model saturated (3)",
        "p99 <= 50 ms",
        "p99 20.7 ms",
        "bare Flask p99 6.0 ms",
        "3.5x",
        True,
        "Callback acknowledgement latency",
        command=".venv/bin/python -m bench.ack_latency",
        machine="AMD EPYC 7B13, 2 logical CPUs, 2026-11-21",
    )
    assert row == (
        "| callback acknowledgement at 200 msg/s, model saturated (3) | p99 <= 50 ms "
        "| p99 20.7 ms | bare Flask p99 6.0 ms | 3.5x | yes "
        "| `.venv/bin/python -m bench.ack_latency` | AMD EPYC 7B13, 2 logical CPUs, 2026-11-21 "
        "| [Callback acknowledgement latency](#callback-acknowledgement-latency) |"
    )
    assert len(cells(row)) == len(summary.COLUMNS) == 9
    assert summary.header().splitlines()[0] == "| " + " | ".join(summary.COLUMNS) + " |"
    assert summary.header().splitlines()[1] == "|" + " --- |" * 9


def test_empty_cells_and_flags_read_as_the_table_writes_them() -> None:
    row = summary.summary_row(
        "w", None, "f", None, None, False, "S", command="c", machine="m, 2026-12-07"
    )
    assert cells(row)[1:6] == ["-", "f", "-", "-", "no"]
    assert cells(summary.summary_row("w", "t", "f", "b", "r", "no (bank)", "S", command="c",
                                     machine="m"))[5] == "no (bank)"  # fmt: skip


def test_nothing_in_a_figure_can_break_the_row() -> None:
    row = summary.summary_row(
        "a | b", "t", "two\nlines", "", "r", None, "S", command="x --sep '|'", machine="m"
    )
    parts = cells(row)
    assert len(parts) == 9
    assert parts[0] == "a \\| b"
    assert parts[2] == "two lines"
    assert parts[3] == "-"
    assert "\n" not in row


@pytest.mark.parametrize(
    ("heading", "fragment"),
    [
        ("Callback acknowledgement latency", "#callback-acknowledgement-latency"),
        (
            "FAQ answers: message in -> reply sent, over paraphrases not listed",
            "#faq-answers-message-in---reply-sent-over-paraphrases-not-listed",
        ),
        ("Quality (hit@1 / hit@5 / MRR@10)", "#quality-hit1--hit5--mrr10"),
        (
            "Dify's External Knowledge API under load: POST /dify/retrieval (issue 6)",
            "#difys-external-knowledge-api-under-load-post-difyretrieval-issue-6",
        ),
        ("/v1 streaming: queue vs in-process", "#v1-streaming-queue-vs-in-process"),
    ],
)
def test_sections_are_linked_as_github_anchors_them(heading: str, fragment: str) -> None:
    assert summary.anchor(heading) == fragment


def test_ratios_as_the_sections_write_them() -> None:
    assert summary.ratio(135.7, 4.0) == "33.9x"
    assert summary.ratio(50.5, 26.4, digits=2) == "1.91x"
    assert summary.ratio(10.6, 8.0, percent=True) == "132.5 %"
    assert summary.ratio(1.0, 0.0) == "-"
    assert summary.ratio(float("nan"), 1.0) == "-"
    assert summary.ratio(1.0, float("nan"), percent=True) == "-"


def test_the_command_is_the_run_s_own() -> None:
    program = ".venv/bin/python -m bench.dify_retrieval"
    assert summary.run_command(["--clients", "20"], program) == program + " --clients 20"
    assert summary.run_command([], program) == program
    assert summary.run_command(["--note", "two words"], program) == program + " --note 'two words'"


def test_by_default_the_command_is_this_process_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "executable", str(tmp_path / ".venv" / "bin" / "python"))
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "bench" / "chaos.py"), "--kills", "2"])
    as_module = SimpleNamespace(__spec__=SimpleNamespace(name="bench.chaos"))
    monkeypatch.setitem(sys.modules, "__main__", as_module)
    assert summary.run_command() == ".venv/bin/python -m bench.chaos --kills 2"
    # Run as a script (bench/milvus_engines.py from a scratch venv): the script's path.
    monkeypatch.setattr(sys, "executable", "/tmp/ml25/bin/python")
    monkeypatch.setattr(sys, "argv", ["bench/milvus_engines.py", "--index", "FLAT"])
    monkeypatch.setitem(sys.modules, "__main__", SimpleNamespace(__spec__=None))
    assert summary.run_command() == "/tmp/ml25/bin/python bench/milvus_engines.py --index FLAT"


def test_the_machine_is_described_as_the_benches_describe_it() -> None:
    text = summary.machine_and_date(datetime(2026, 12, 7, 3, 0, tzinfo=UTC))
    assert text.endswith(", 2026-12-07")
    assert "logical CPUs" in text


def test_every_row_of_the_results_table_has_its_columns_and_a_section_that_exists() -> None:
    rows = table_rows()
    assert len(rows) >= 15
    anchors = headings()
    for row in rows:
        parts = cells(row)
        assert len(parts) == 9, row
        links = re.findall(r"\]\((#[^)]+)\)", parts[8])
        assert links, row
        for link in links:
            assert link in anchors, (link, row)


def _print_row_sections() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in sorted(BENCH.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "print_row"
            ):
                section = node.args[6]
                assert isinstance(section, ast.Constant), f"{path.name}: a literal section"
                out.setdefault(path.stem, []).append(section.value)
    return out


def test_each_bench_prints_a_row_whose_section_is_in_results() -> None:
    sections = _print_row_sections()
    assert set(sections) >= {
        "ack_latency",
        "admission_cost",
        "chaos",
        "chat_stream",
        "concurrency",
        "dify_retrieval",
        "faq_calibration",
        "faq_latency",
        "llm_speed",
        "milvus_engines",
        "passive_capacity",
        "retrieval",
    }
    anchors = headings()
    table = "\n".join(table_rows())
    for bench, names in sections.items():
        for name in names:
            assert summary.anchor(name) in anchors, (bench, name)
            assert f"({summary.anchor(name)})" in table, (bench, name)
