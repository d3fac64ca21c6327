"""The question sets retrieval and FAQ matching are measured on, each with its knowledge.

- ``chatopera``: 251 FAQ entries of 12 businesses (../shared/data/faq/chatopera) and 479
  queries; ``chatopera-para`` is the 177 of them that are real paraphrases (the others
  are cut out of the entry's own question). The entries have no listed paraphrases.
- ``shop``: the sample shop (knowledge/), questions of bench/data/answer_eval.jsonl and
  answer_eval_holdout.jsonl whose facts are in an FAQ answer (the gold entries are those
  whose answer states a fact).
- ``hotel`` and ``utility``: the held-out knowledge bases of bench/data/heldout/, each 32
  FAQ entries with two listed paraphrases and a policy document, 40 answerable questions
  (gold entry given) and 40 unanswerable ones, written in customers' words by someone who
  did not see the entries' questions. ``hotel`` was used to choose designs and
  thresholds; ``utility`` only to report.
- ``bank``: a city commercial bank (bench/data/heldout/bank), 37 FAQ entries and a longer
  policy document, written after every design it evaluates, facts first and questions
  from the fact sheet only; never used to choose anything.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data"
CHATOPERA = ROOT.parent / "shared" / "data" / "faq" / "chatopera"
HELD_OUT = DATA / "heldout"
SETS = ("chatopera", "chatopera-para", "shop", "hotel", "utility", "bank")


@dataclass
class Question:
    text: str
    kind: str  # in | out
    #: The questions (FAQ titles) of the entries that answer it; empty: a document or nothing.
    gold: set[str] = field(default_factory=set)
    facts: list[str] = field(default_factory=list)
    domain: str = ""


@dataclass
class QuestionSet:
    name: str
    knowledge: Path | None  # a folder to ingest; None: written by ``write_knowledge``
    questions: list[Question]
    faq_rows: list[dict[str, str]] = field(default_factory=list)  # chatopera only

    def write_knowledge(self, folder: Path) -> Path:
        """The folder to ingest (chatopera's entries become an FAQ spreadsheet there)."""
        if self.knowledge is not None:
            return self.knowledge
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "faq.csv").open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["question", "answer", "category"])
            for row in self.faq_rows:
                writer.writerow([row["question"], row["answer"], row["domain"]])
        return folder

    @property
    def answerable(self) -> list[Question]:
        return [q for q in self.questions if q.kind == "in" and q.gold]


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def faq_entries(folder: Path) -> list[dict[str, str]]:
    with (folder / "faq.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def chatopera(paraphrases_only: bool = False) -> QuestionSet:
    faq = _jsonl(CHATOPERA / "faq.jsonl")
    by_id = {row["faq_id"]: row["question"].strip() for row in faq}
    questions = [
        Question(q["query"], "in", {by_id[q["gold_faq_id"]]}, domain=q["domain"])
        for q in _jsonl(CHATOPERA / "queries.jsonl")
        if not (paraphrases_only and q["substring_of_post"])
    ]
    name = "chatopera-para" if paraphrases_only else "chatopera"
    return QuestionSet(name, None, questions, faq_rows=faq)


def shop() -> QuestionSet:
    entries = faq_entries(ROOT / "knowledge")
    questions = []
    for path in (DATA / "answer_eval.jsonl", DATA / "answer_eval_holdout.jsonl"):
        for d in _jsonl(path):
            facts = d.get("facts", [])
            gold = {e["question"] for e in entries if any(f in e["answer"] for f in facts)}
            questions.append(Question(d["q"], d["kind"], gold, facts))
    return QuestionSet("shop", ROOT / "knowledge", questions)


def held_out(name: str) -> QuestionSet:
    folder = HELD_OUT / name
    entries = faq_entries(folder / "knowledge")
    questions = []
    for d in _jsonl(folder / "questions.jsonl"):
        entry = d.get("entry")
        gold = {entries[entry]["question"]} if isinstance(entry, int) else set()
        questions.append(Question(d["q"], d["kind"], gold, d.get("facts", [])))
    return QuestionSet(name, folder / "knowledge", questions)


def load(name: str) -> QuestionSet:
    if name in ("chatopera", "chatopera-para"):
        return chatopera(name == "chatopera-para")
    if name == "shop":
        return shop()
    return held_out(name)
