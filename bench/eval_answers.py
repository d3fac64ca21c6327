"""Does the answer engine answer from the knowledge, and refuse when the knowledge is silent?

Runs every question of bench/data/answer_eval.jsonl (in-knowledge questions, each with the
facts a right answer contains, and out-of-knowledge questions about the sample shop)
through the service's own pipeline: retrieval from the sample knowledge in milvus-lite, the
real GGUF model on llama.cpp, the production sampling settings (temperature 0.6, top-p
0.95, a fixed seed). Reports:

- grounded-answer rate: in-knowledge answers that state a right fact and are not refusals;
- in-knowledge answers that state no right fact (a bare "支持。", a wrong policy, the
  passage beside the question): what reaches the customer when the answer is not grounded;
- refusal rate out of knowledge (target >= 95 %), and false refusals in knowledge;
- ``<think>`` leaks in the final answers (target 0).

Each defence is measured on the same generated drafts, so their effects can be told
apart: the model alone (its draft as the answer), the model's own refusal recognised, and
the answer check against the passages at several support thresholds (the pipeline's
ANSWER_MIN_SUPPORT). A diagnostic shows how well the retrieval score alone would have
separated the two kinds of question.

    .venv/bin/python -m bench.eval_answers --model 0.5b [--limit N] [--milvus-uri URI]
    .venv/bin/python -m bench.eval_answers --rescore answers.jsonl   # saved drafts, no model

bench/data/answer_eval_holdout.jsonl (``--data``) is a second, smaller set written after the
answer check's last changes, to see how far the check is fitted to the first.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bench.answer_setup import describe_machine, knowledge_store, model_path, service_pipeline

DATA = Path(__file__).resolve().parent / "data" / "answer_eval.jsonl"
THRESHOLDS = (0.5, 0.6, 0.7, 0.8)
_TAG = re.compile(r"</?think>", re.IGNORECASE)

#: The instructions of the first version of the pipeline, for comparison (--instructions v1).
V1_INSTRUCTIONS = """你是一家网店的微信客服助手。请严格遵守：
1. 只根据【资料】中的内容回答顾客的问题，不要编造资料里没有的政策、价格、时间或承诺。
2. 如果【资料】没有提到顾客问的内容，就直接说明暂时无法确认，并建议顾客回复“人工”联系人工客服。
3. 用简体中文、纯文本回答（不要使用Markdown、标题或列表符号），语气礼貌，尽量简短，不超过150字。
"""


@dataclass
class Row:
    question: str
    kind: str  # in | out
    facts: list[str]
    text: str = ""  # the pipeline's final answer
    draft: str = ""
    passages: tuple[str, ...] = ()
    from_faq: bool = False
    refused: bool = False
    seconds: float = 0.0
    top_similarity: float | None = None
    off_topic: tuple[int, ...] = ()  # passages the FAQ topic check set aside


def load(path: Path) -> list[Row]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            rows.append(Row(d["q"], d["kind"], d.get("facts", [])))
    return rows


def has_fact(text: str, facts: Sequence[str]) -> bool:
    return any(f in text for f in facts)


def decide(row: Row, mode: str) -> tuple[bool, str]:
    """(refused, text) of a row's answer under one defence, from its draft."""
    from app.pipeline.answer import AnswerGate
    from app.pipeline.grounding import is_refusal

    if row.from_faq:
        return False, row.text
    if mode == "model alone":
        return is_refusal(row.draft), row.draft
    threshold = 0.0 if mode == "refusal recognised" else float(mode.split()[2].rstrip(","))
    off_topic = () if mode.endswith("topic check off") else row.off_topic
    gate = AnswerGate(
        list(row.passages),
        threshold,
        lambda s: s,
        off_topic=off_topic,
        question=row.question,
    )
    gate.feed(row.draft)
    gate.finish(complete=True)
    return gate.refused, gate.text


def report(rows: list[Row]) -> str:
    ins = [r for r in rows if r.kind == "in"]
    outs = [r for r in rows if r.kind == "out"]
    modes = [
        "model alone",
        "refusal recognised",
        "support >= 0.7, FAQ topic check off",
        *(f"support >= {t}" for t in THRESHOLDS),
    ]
    lines = [
        f"| defence | grounded (in, n={len(ins)}) | answered, no right fact (in) | "
        f"false refusals (in) | refusals (out, n={len(outs)}) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for mode in modes:
        grounded = factless = false_ref = refused_out = 0
        for r in ins:
            refused, text = decide(r, mode)
            grounded += (not refused) and has_fact(text, r.facts)
            factless += (not refused) and not has_fact(text, r.facts)
            false_ref += refused
        for r in outs:
            refused_out += decide(r, mode)[0]
        lines.append(
            f"| {mode} | {grounded}/{len(ins)} ({100 * grounded / len(ins):.0f} %) | "
            f"{factless} | {false_ref} | "
            f"{refused_out}/{len(outs)} ({100 * refused_out / len(outs):.0f} %) |"
        )
    faq = sum(r.from_faq for r in rows)
    leaks = sum(bool(_TAG.search(r.text)) for r in rows)
    final_grounded = sum((not r.refused) and has_fact(r.text, r.facts) for r in ins)
    final_refused = sum(r.refused for r in outs)
    lines += [
        "",
        f"The pipeline as configured: grounded {final_grounded}/{len(ins)} in knowledge, "
        f"refused {final_refused}/{len(outs)} out of knowledge; "
        f"{faq} answered from the FAQ without the model; `<think>` leaks: {leaks}.",
        f"Answer time: mean {sum(r.seconds for r in rows) / len(rows):.1f} s, "
        f"max {max(r.seconds for r in rows):.1f} s.",
    ]
    lines.append(similarity_gate(ins, outs))
    lines.append(coverage_gate(ins, outs))
    return "\n".join(lines)


def similarity_gate(ins: list[Row], outs: list[Row]) -> str:
    """The best a threshold on the top passage's cosine similarity could do."""
    pairs = [(r.top_similarity, r.kind == "in") for r in ins + outs if r.top_similarity]
    if not pairs:
        return ""
    best = (0.0, 0.0)
    for t, _ in pairs:
        ok = sum((s >= t) == inside for s, inside in pairs)
        best = max(best, (ok / len(pairs), t))
    lo_in = min(s for s, inside in pairs if inside)
    hi_out = max(s for s, inside in pairs if not inside)
    return (
        f"Retrieval gate (diagnostic): top-1 cosine similarity ranges overlap (lowest "
        f"in-knowledge {lo_in:.3f}, highest out-of-knowledge {hi_out:.3f}); the best single "
        f"threshold ({best[1]:.3f}) classifies {100 * best[0]:.0f} % of questions right."
    )


def coverage_gate(ins: list[Row], outs: list[Row]) -> str:
    """What refusing answers that leave a noun of the question unaddressed would do: the
    noun in neither the answer nor any passage ("鸡翅" when the answer is the air fryer's
    warranty). Measured, not used: paraphrases name things the knowledge words otherwise."""
    import re

    import jieba.posseg as pseg

    asking = re.compile(r"^(几|多少|多久|什么|哪|怎么|为什么|是否)")

    def unaddressed(r: Row, text: str) -> bool:
        for word, flag in pseg.lcut(r.question):
            word = word.strip().lower()
            if not word or asking.match(word) or (len(word) < 2 and not word.isascii()):
                continue
            if not (flag.startswith("n") or flag in ("eng", "vn")):
                continue
            if word not in text.lower() and not any(word in p.lower() for p in r.passages):
                return True
        return False

    def refused(r: Row) -> tuple[bool, str]:
        no, text = decide(r, "support >= 0.7")
        return no or (not r.from_faq and unaddressed(r, text)), text

    grounded = sum((not no) and has_fact(text, r.facts) for r in ins for no, text in [refused(r)])
    refusals = sum(refused(r)[0] for r in outs)
    return (
        f"Question-coverage gate (diagnostic, not used): also refusing answers that leave a "
        f"noun of the question in neither the answer nor any passage would refuse "
        f"{refusals}/{len(outs)} out of knowledge and keep {grounded}/{len(ins)} grounded "
        f"answers."
    )


def instructions(choice: str) -> str:
    from app.pipeline.prompts import INSTRUCTIONS

    if choice == "current":
        return INSTRUCTIONS
    if choice == "v1":
        return V1_INSTRUCTIONS
    return Path(choice).read_text(encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="0.5b", help="0.5b, 1.5b or a GGUF path")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=0, help="only the first N of each kind")
    parser.add_argument("--milvus-uri", help="an existing Milvus (default: start milvus-lite)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--min-support", type=float, default=None, help="default: settings")
    parser.add_argument(
        "--instructions", default="current", help="current, v1 or a file with instructions"
    )
    parser.add_argument("--time-budget", type=float, default=None, help="seconds per answer")
    parser.add_argument("--out", type=Path, help="write every answer here (JSON lines)")
    parser.add_argument(
        "--rescore",
        type=Path,
        help="no model: replay the answer check of this code on the drafts of an --out file",
    )
    args = parser.parse_args(argv)
    if args.rescore:
        return rescore(args.rescore)

    from app.llm.engine import LlamaEngine
    from app.resources import generation_params
    from app.settings import load_settings

    model = model_path(args.model)
    settings = load_settings(llm_model_path=model, llm_seed=args.seed)
    rows = load(args.data)
    if args.limit:
        rows = [r for r in rows if r.kind == "in"][: args.limit] + [
            r for r in rows if r.kind == "out"
        ][: args.limit]
    print(f"# Answer evaluation: {len(rows)} questions\n\n{describe_machine(model)}")
    # Quality, not this machine's load: no wall-clock cut-off unless asked for.
    params = replace(generation_params(settings), time_budget_s=args.time_budget)
    print(
        f"- sampling: temperature {params.temperature}, top-p {params.top_p}, seed "
        f"{params.seed}, max {params.max_tokens} tokens, time budget "
        f"{params.time_budget_s or 'none'}; top_k {settings.retrieval_top_k}; "
        f"embedder {settings.embedding_model}; instructions {args.instructions}; "
        f"ANSWER_MIN_SUPPORT {settings.answer_min_support}\n",
        flush=True,
    )
    engine = LlamaEngine(
        model, n_ctx=settings.llm_n_ctx, n_threads=settings.llm_n_threads, n_parallel=1
    )
    with knowledge_store(args.milvus_uri, collection="kb_eval") as store:
        min_support = settings.answer_min_support if args.min_support is None else args.min_support
        # The drafts are generated with the answer check off (support 0) so every defence
        # can be replayed on them; the final answers use the configured threshold.
        pipeline = service_pipeline(
            store, engine, params, min_support=0.0, instructions=instructions(args.instructions)
        )
        for i, row in enumerate(rows, 1):
            t0 = time.perf_counter()
            answer = pipeline.answer(row.question)
            row.seconds = time.perf_counter() - t0
            row.draft, row.passages, row.from_faq, row.off_topic = (
                answer.draft,
                tuple(answer.passages),
                answer.from_faq,
                tuple(answer.off_topic),
            )
            hits = store.search(row.question, top_k=1)
            row.top_similarity = hits[0].similarity if hits else None
            row.refused, row.text = decide(row, f"support >= {min_support}")
            if answer.from_faq:
                row.text = answer.text
            row.refused = row.refused or answer.refused
            mark = "FAQ" if row.from_faq else "REF" if row.refused else "ANS"
            print(
                f"[{i}/{len(rows)}] {row.kind:3} {mark} {row.seconds:5.1f}s {row.question} -> "
                f"{(row.text if not row.refused else row.draft)[:80]!r}",
                flush=True,
            )
    engine.close()
    if args.out:
        with args.out.open("w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r.__dict__, ensure_ascii=False) + "\n")
    print("\n" + report(rows))
    return 0


def rescore(path: Path) -> int:
    """The defences of the current code on saved drafts: a change to the answer check is
    measured in seconds, on exactly the drafts it is compared with."""
    rows = [
        replace(
            Row("", "", []),
            **{**d, "passages": tuple(d["passages"]), "off_topic": tuple(d.get("off_topic", ()))},
        )
        for d in map(json.loads, path.read_text(encoding="utf-8").splitlines())
        if d
    ]
    print(f"# Answer evaluation, re-scored: {len(rows)} saved drafts from {path}\n")
    print("(The 'as configured' line is the saved run's; the defence rows are this code's.)\n")
    print(report(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
