"""Does the service answer what its knowledge holds, and decline what it does not?

Each question set of bench/retrieval_sets.py (the sample shop's, and the held-out hotel and
gas utility, each with questions the knowledge answers and questions it does not) goes
through the pipeline the WeChat worker runs, configured as the service configures it
(settings from the environment: FAQ matching, the judge, the answer check): its
knowledge folder indexed into milvus-lite, the real GGUF model on llama.cpp with the
production sampling (temperature 0.6, top-p 0.95) and a fixed seed per run. Reports, per
set and seed:

- answerable questions answered with a right fact (one of the question's facts is in the
  reply; target >= 90 %), answered with a wrong fact (a reply without any right fact;
  target <= 2 %), and declined (the hand-off reply);
- unanswerable questions declined (target >= 95 %);
- how the replies came about: an FAQ entry's stored answer (by characters, by meaning, or
  after the judge), the model, or the hand-off and the check that decided it;
- ``<think>`` leaks (target 0) and answer times.

    .venv/bin/python -m bench.eval_answers --model 1.5b --sets shop hotel utility --seeds 42 43 44
    .venv/bin/python -m bench.eval_answers --model 0.5b --sets utility --limit 10

``hotel`` was used to choose the designs and thresholds; ``utility`` was written with it
and only ever reported; ``bank`` was written after them all (bench/retrieval_sets.py).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from bench import retrieval_sets, summary
from bench.answer_setup import describe_machine, knowledge_store, model_path, service_pipeline

_TAG = re.compile(r"</?think>", re.IGNORECASE)


@dataclass
class Row:
    set: str
    seed: int
    question: str
    kind: str  # in | out
    facts: list[str]
    text: str = ""
    outcome: str = ""  # faq | generated | refused
    via: str = ""  # characters | meaning | judge, or the check that refused
    draft: str = ""
    seconds: float = 0.0
    detail: dict = field(default_factory=dict)
    #: The passages the model answered from, as it saw them (for reading misses).
    passages: list[str] = field(default_factory=list)

    @property
    def declined(self) -> bool:
        return self.outcome == "refused"

    @property
    def right(self) -> bool:
        return not self.declined and any(f in self.text for f in self.facts)


def score(rows: Sequence[Row]) -> dict[str, float]:
    ins = [r for r in rows if r.kind == "in"]
    outs = [r for r in rows if r.kind == "out"]
    return {
        "in": len(ins),
        "out": len(outs),
        "right": sum(r.right for r in ins),
        "wrong": sum(not r.declined and not r.right for r in ins),
        "declined_in": sum(r.declined for r in ins),
        "declined_out": sum(r.declined for r in outs),
        "verbatim_in": sum(r.outcome == "faq" for r in ins),
        "verbatim_out": sum(r.outcome == "faq" for r in outs),
        "leaks": sum(bool(_TAG.search(r.text)) for r in rows),
        "mean_s": sum(r.seconds for r in rows) / max(1, len(rows)),
        "max_s": max((r.seconds for r in rows), default=0.0),
    }


def _pct(n: float, d: float) -> str:
    return f"{n:.0f}/{d:.0f} ({100 * n / d:.0f} %)" if d else "-"


def report(rows: Sequence[Row]) -> str:
    lines = [
        "| set | seed | right (in) | wrong (in) | declined (in) | declined (out) | "
        "verbatim (in / out) | `<think>` leaks | mean / max s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    groups: dict[tuple[str, int], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.set, r.seed), []).append(r)
    for (name, seed), group in groups.items():
        s = score(group)
        lines.append(
            f"| {name} | {seed} | {_pct(s['right'], s['in'])} | {_pct(s['wrong'], s['in'])} | "
            f"{_pct(s['declined_in'], s['in'])} | {_pct(s['declined_out'], s['out'])} | "
            f"{s['verbatim_in']:.0f} / {s['verbatim_out']:.0f} | {s['leaks']:.0f} | "
            f"{s['mean_s']:.1f} / {s['max_s']:.1f} |"
        )
    for name in dict.fromkeys(r.set for r in rows):
        s = score([r for r in rows if r.set == name])
        lines.append(
            f"| {name} | all | {_pct(s['right'], s['in'])} | {_pct(s['wrong'], s['in'])} | "
            f"{_pct(s['declined_in'], s['in'])} | {_pct(s['declined_out'], s['out'])} | "
            f"{s['verbatim_in']:.0f} / {s['verbatim_out']:.0f} | {s['leaks']:.0f} | "
            f"{s['mean_s']:.1f} / {s['max_s']:.1f} |"
        )
    how = Counter((r.kind, r.outcome, r.via) for r in rows)
    lines += ["", "How the replies came about (all runs):", ""]
    for (kind, outcome, via), n in sorted(how.items()):
        lines.append(f"- {kind}: {outcome} {via}: {n}")
    return "\n".join(lines)


def print_summary_rows(rows: Sequence[Row]) -> None:
    """The summary-table rows of bench/RESULTS.md this run updates: right, wrong and
    declined, per set over every seed run."""
    per_set = {
        name: score([r for r in rows if r.set == name])
        for name in dict.fromkeys(r.set for r in rows)
    }

    def figure(key: str, total: str) -> tuple[str, list[float]]:
        shares = {n: s[key] / s[total] for n, s in per_set.items() if s[total]}
        return ", ".join(f"{n} {100 * v:.0f} %" for n, v in shares.items()), list(shares.values())

    for what, key, total, target, met in (
        (
            "answerable questions answered with a right fact (15)",
            "right",
            "in",
            ">= 90 %",
            lambda v: v >= 0.9,
        ),
        (
            "answerable questions answered with a wrong fact (15)",
            "wrong",
            "in",
            "<= 2 %",
            lambda v: v <= 0.02,
        ),
        (
            "unanswerable questions declined (15)",
            "declined_out",
            "out",
            ">= 95 %",
            lambda v: v >= 0.95,
        ),
    ):
        text, shares = figure(key, total)
        summary.print_row(
            what,
            target,
            text,
            "none (quality, held-out sets)",
            None,
            all(met(v) for v in shares),
            "End to end: right, wrong, declined",
        )


def _via(detail: dict) -> str:
    return str(detail.get("via") or detail.get("check") or "")


def run_set(name: str, seeds: Sequence[int], args: argparse.Namespace) -> list[Row]:
    from app.llm.engine import LlamaEngine
    from app.resources import generation_params
    from app.settings import load_settings

    qset = retrieval_sets.load(name)
    questions = qset.questions
    if args.limit:
        questions = [q for q in questions if q.kind == "in"][: args.limit] + [
            q for q in questions if q.kind == "out"
        ][: args.limit]
    model = model_path(args.model)
    settings = load_settings(llm_model_path=model)
    engine = LlamaEngine(
        model, n_ctx=settings.llm_n_ctx, n_threads=settings.llm_n_threads, n_parallel=args.parallel
    )
    rows: list[Row] = []
    folder = qset.write_knowledge(Path(args.tmp) / name)
    with knowledge_store(args.milvus_uri, f"eval_{name}", folder) as store:
        for seed in seeds:
            # Quality, not this machine's load: no wall-clock cut-off.
            params = replace(generation_params(settings), seed=seed, time_budget_s=None)
            overrides: dict = {"instructions": args.instructions} if args.instructions else {}
            if args.entry_fallback:
                overrides["entry_fallback"] = args.entry_fallback
            pipeline = service_pipeline(store, engine, params, **overrides)

            def ask(q: retrieval_sets.Question, seed: int = seed, pipeline=pipeline) -> Row:  # noqa: ANN001
                t0 = time.perf_counter()
                answer = pipeline.answer(q.text)
                row = Row(name, seed, q.text, q.kind, list(q.facts))
                row.seconds = time.perf_counter() - t0
                row.text, row.outcome, row.draft = answer.text, answer.outcome, answer.draft
                row.detail, row.via = answer.detail, _via(answer.detail)
                row.passages = list(answer.passages)
                return row

            with ThreadPoolExecutor(args.parallel) as pool:
                for i, row in enumerate(pool.map(ask, questions), 1):
                    rows.append(row)
                    mark = "RIGHT" if row.right else "DECL " if row.declined else "ANS  "
                    print(
                        f"[{name} {seed} {i}/{len(questions)}] {row.kind:3} {mark} "
                        f"{row.outcome:9} {row.via:10} {row.seconds:5.1f}s {row.question} -> "
                        f"{row.text[:60]!r}",
                        flush=True,
                    )
    engine.close()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="1.5b", help="0.5b, 1.5b or a GGUF path")
    parser.add_argument("--sets", nargs="+", default=["shop", "hotel", "utility", "bank"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--limit", type=int, default=0, help="only the first N of each kind")
    parser.add_argument("--parallel", type=int, default=4, help="questions answered at once")
    parser.add_argument("--milvus-uri", help="an existing Milvus (default: start milvus-lite)")
    parser.add_argument("--out", type=Path, help="write every answer here (JSON lines)")
    parser.add_argument("--instructions", type=Path, help="a file of other instructions")
    parser.add_argument(
        "--entry-fallback",
        choices=["always", "unchecked", "never"],
        help="when a judged FAQ entry's stored answer replaces a refused model answer",
    )
    parser.add_argument("--replay", type=Path, help="report a saved --out file, run nothing")
    args = parser.parse_args(argv)
    if args.replay:
        with args.replay.open(encoding="utf-8") as fh:
            rows = [Row(**json.loads(line)) for line in fh]
        print(report(rows))
        print_summary_rows(rows)
        return 0
    if args.instructions:
        args.instructions = args.instructions.read_text(encoding="utf-8")
    print(f"# Answer evaluation\n\n{describe_machine(model_path(args.model))}")
    print(f"- command: {' '.join(sys.argv)}\n", flush=True)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        for name in args.sets:
            rows += run_set(name, args.seeds, args)
    if args.out:
        with args.out.open("w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(asdict(r), ensure_ascii=False) + "\n")
    print("\n" + report(rows))
    print_summary_rows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
