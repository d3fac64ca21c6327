"""The staff's list pages on a large log: /api/conversations and /api/unanswered at 100,000
logged messages, against the same SQL run directly.

A fresh PostgreSQL database (made as tests/conftest.py makes them, dropped afterwards) gets
the app's tables (``db.create_all()``: the models declare migrations 0015's and 0017's indexes) and
``--messages`` customer messages bulk-loaded by COPY: three channels (wechat 55 %, wecom
25 %, kf 20 %), every outcome (faq 35 %, generated 30 %, refused 12 %, replied 8 %,
handed off 5 %, failed 3 %, pending 7 %), a few thousand customers of whom a few ask a lot,
times spread over 90 days, the questions drawn from bench/data/unanswered_groups.jsonl with
the openings and endings customers add (so unanswered questions have a long tail of
distinct wordings), each answered message with its reply (a long one in two) and the
record of its answer.

Then, through the real Flask app (test client, signed in as staff), each request is timed
``--repeat`` times after one untimed call (p50 and p95):

- /api/conversations: the first page unfiltered, by each channel and outcome, a week's
  window, a text search, one frequent customer's thread;
- /api/unanswered for 7 and 30 days, cold (the first request after a restart: the
  embedder's query cache empty, each question's vector read from ``question_vectors``,
  where the llm workers keep it when they answer; the bench keeps them first, untimed,
  since COPY bypassed the workers) and warm (repeated);
- /api/overview?days=7 when the app has it (skipped on a 404).

The raw engine beside each: the SQL statements the request ran (captured from SQLAlchemy's
cursor on the untimed call), replayed with their parameters on a plain psycopg connection,
as a ratio. For /api/unanswered the time is also split: SQL and rows, the kept vectors,
grouping.

    .venv/bin/python -m bench.staff_pages                       # 100,000 messages
    .venv/bin/python -m bench.staff_pages --messages 20000 --repeat 10 --cold 1
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import summary

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "bench" / "data" / "unanswered_groups.jsonl"
STAFF = ("bench-staff", "bench-pass-123")
TARGET_MS = 300.0

CHANNELS = (("wechat", 55), ("wecom", 25), ("kf", 20))
OUTCOMES = (
    ("faq", 35),
    ("generated", 30),
    ("refused", 12),
    ("replied", 8),
    ("handed_off", 5),
    ("failed", 3),
    ("", 7),
)
OPENINGS = ("", "", "请问", "你好，", "在吗？", "麻烦问下，", "客服，", "亲，")
ENDINGS = ("", "", "？", "呢", "啊", "，谢谢", "？急", "。。")
ANSWERS = (
    "您好，退款会在审核通过后 1-3 个工作日原路退回。",
    "酒店退房时间为中午 12:00，如需延迟请联系前台。",
    "电费可在微信公众号“缴费”菜单中在线缴纳。",
    "订单付款后 48 小时内发货，预售商品以页面时间为准。",
    "抱歉，这个问题我暂时无法回答，已为您转接人工客服。",
)


def pick(rng: random.Random, weighted: Sequence[tuple[str, int]]) -> str:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


def fill(dsn: str, messages: int, now: datetime, seed: int = 7) -> dict[str, Any]:
    """``messages`` inbound messages and their replies, by COPY; returns what the timed
    requests need (a frequent customer)."""
    import psycopg

    rng = random.Random(seed)
    bases = [json.loads(line)["question"] for line in QUESTIONS.read_text("utf-8").splitlines()]
    customers = [f"o{n:07d}cust" for n in range(max(50, messages // 25))]
    weights = [1 / (i + 1) ** 0.8 for i in range(len(customers))]
    inbound = io.StringIO()
    replies = io.StringIO()
    reply_id = 0
    span = 90 * 86400
    for i in range(1, messages + 1):
        channel = pick(rng, CHANNELS)
        outcome = pick(rng, OUTCOMES)
        customer = rng.choices(customers, weights=weights)[0]
        text = rng.choice(OPENINGS) + rng.choice(bases) + rng.choice(ENDINGS)
        created = now - timedelta(seconds=rng.random() * span)
        status = {"": "received", "failed": "failed", "handed_off": "handoff"}.get(
            outcome, "answered"
        )
        detail = ""
        if outcome in ("faq", "generated", "refused"):
            detail = json.dumps(
                {
                    "check": outcome,
                    "score": round(rng.random(), 4),
                    "sources": [{"source": "faq.xlsx", "section": "售后", "score": 0.91}],
                    "timings_ms": {
                        "retrieve": rng.randint(20, 90),
                        "answer": rng.randint(30, 9000),
                    },
                },
                ensure_ascii=False,
            )
        row = (
            i,
            channel,
            f"m{i}",
            "gh_bench",
            customer,
            "text",
            text,
            status,
            1,
            "",
            created.isoformat(),
            created.isoformat(),
            "",
            "",
            "custom",
            0,
            "",
            outcome,
            detail,
        )
        inbound.write("\t".join(str(v) for v in row) + "\n")
        if outcome:
            for seq in range(2 if rng.random() < 0.2 else 1):
                reply_id += 1
                answer = rng.choice(ANSWERS)
                sent = created + timedelta(milliseconds=rng.randint(200, 20000))
                sources = '[{"source": "faq.xlsx", "score": 0.9}]' if outcome == "faq" else ""
                replies.write(
                    "\t".join(
                        str(v)
                        for v in (
                            reply_id,
                            i,
                            seq,
                            answer,
                            sources,
                            "sent",
                            "",
                            created.isoformat(),
                            sent.isoformat(),
                            "custom",
                        )
                    )
                    + "\n"
                )
    with psycopg.connect(dsn) as conn:
        with conn.cursor() as cur:
            with cur.copy(
                "COPY inbound_messages (id, channel, dedup_key, account, customer, msg_type, "
                "content, status, attempts, error, created_at, updated_at, claimed_by, "
                "media_id, delivery, callback_tries, passive_reply, outcome, outcome_detail) "
                "FROM STDIN"
            ) as copy:
                copy.write(inbound.getvalue())
            with cur.copy(
                "COPY outbound_replies (id, inbound_id, seq, content, sources, status, errmsg, "
                "created_at, sent_at, via) FROM STDIN"
            ) as copy:
                copy.write(replies.getvalue())
            cur.execute("SELECT setval('inbound_messages_id_seq', %s)", (messages,))
            cur.execute("SELECT setval('outbound_replies_id_seq', %s)", (max(1, reply_id),))
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE inbound_messages")
        conn.execute("VACUUM ANALYZE outbound_replies")
    return {"customer": customers[0], "replies": reply_id}


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Captured:
    """The SQL statements (and parameters) the app sends to the log's tables."""

    TABLES = ("inbound_messages", "outbound_replies", "unanswered_resolutions")

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.on = False
        self.statements: list[tuple[str, Any]] = []

        @event.listens_for(engine, "before_cursor_execute")
        def _seen(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ANN202
            if self.on and any(t in statement for t in self.TABLES):
                self.statements.append((statement, parameters))

    def capture(self, call: Callable[[], Any]) -> list[tuple[str, Any]]:
        self.statements, self.on = [], True
        try:
            call()
        finally:
            self.on = False
        return self.statements


def replay(conn: Any, statements: list[tuple[str, Any]]) -> None:
    with conn.cursor() as cur:
        for statement, parameters in statements:
            cur.execute(statement, parameters)
            cur.fetchall()
    conn.rollback()


def timed(call: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20, help="timed calls of each request")
    parser.add_argument("--cold", type=int, default=1, help="cold /api/unanswered calls")
    args = parser.parse_args(argv)

    import psycopg

    from app import create_app, resources
    from app.accounts import users
    from app.conversations import unanswered, vectors
    from app.extensions import db
    from app.heap import freeze_startup_heap
    from app.settings import load_settings
    from bench.ack_latency import machine
    from tests.conftest import temp_pg_database
    from tests.support import free_port

    info = machine()
    command = summary.run_command()
    print(
        f"- machine: {info['cpu']}, {info.get('memory', '?')}, Python {platform.python_version()}"
    )
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres") as c:
        print(f"- database: {c.execute('SELECT version()').fetchone()[0].split(' on ')[0]}")
    print(f"- command: {command}", flush=True)

    now = datetime.now(UTC)
    with temp_pg_database() as url, tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            data_dir=Path(tmp),
            database_url=url,
            milvus_uri=f"http://127.0.0.1:{free_port()}",  # nothing there: no suggestions
        )
        app = create_app(settings)
        with app.app_context():
            db.create_all()
            users.create_user(*STAFF, role="staff", actor="bench")
            engine = db.engine
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        t0 = time.perf_counter()
        made = fill(dsn, args.messages, now)
        print(
            f"- filled: {args.messages:,} messages and {made['replies']:,} replies over 90 "
            f"days in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        store = resources.knowledge_store(settings)
        print(f"- model: {store.embedder.name} (the service's embedder), query cache "
              f"{settings.embedding_query_cache}\n", flush=True)  # fmt: skip
        # As app/wsgi.py does once a web process has started (app/heap.py).
        freeze_startup_heap()
        client = app.test_client()
        r = client.post("/api/auth/login", json={"username": STAFF[0], "password": STAFF[1]})
        assert r.status_code == 200, r.get_data(as_text=True)
        captured = Captured(engine)
        raw_conn = psycopg.connect(dsn)

        week_ago = (now - timedelta(days=37)).date().isoformat()
        week_end = (now - timedelta(days=30)).date().isoformat()
        cases = [
            ("first page, unfiltered", {}),
            *((f"channel={c}", {"channel": c}) for c, _ in CHANNELS),
            *((f"outcome={o or 'pending'}", {"outcome": o or "pending"}) for o, _ in OUTCOMES),
            ("a week's window (since, until)", {"since": week_ago, "until": week_end}),
            ("text search q=退款", {"q": "退款"}),
            ("text search q=救生员 (rare)", {"q": "救生员"}),
            ("one customer's thread", {"customer": made["customer"]}),
        ]
        results: list[tuple[str, list[float], list[float]]] = []

        def get(path: str, params: dict[str, str]) -> Callable[[], Any]:
            def call() -> Any:
                resp = client.get(path, query_string=params)
                assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
                return resp

            return call

        print("| request | rows | p50 ms | p95 ms | raw SQL p50 ms | raw p95 ms | ratio (p50) |")
        print("|" + " --- |" * 7)
        for name, params in cases:
            call = get("/api/conversations", params)
            statements = captured.capture(call)
            first = call().get_json()
            app_ms = timed(call, args.repeat)
            raw_ms = timed(lambda s=statements: replay(raw_conn, s), args.repeat)
            results.append((f"/api/conversations {name}", app_ms, raw_ms))
            rows = f"{len(first['messages'])} of {first['total']:,}"
            print(
                f"| /api/conversations {name} | {rows} | {statistics.median(app_ms):.1f} "
                f"| {percentile(app_ms, 95):.1f} | {statistics.median(raw_ms):.1f} "
                f"| {percentile(raw_ms, 95):.1f} "
                f"| {summary.ratio(statistics.median(app_ms), statistics.median(raw_ms))} |",
                flush=True,
            )

        cache = store.embedder
        # What the llm workers kept when they answered (app/conversations/vectors.py): the
        # vector of each question left unanswered. COPY bypassed them: kept here, untimed.
        with app.app_context():
            kept_texts = [q.text for q in unanswered.collect(30)]
            db.session.rollback()
            t0 = time.perf_counter()
            vectors.stored_first(cache.inner)(kept_texts)  # type: ignore[attr-defined]
        print(
            f"\n- kept as the workers would have: {len(kept_texts):,} questions' vectors "
            f"(30 days) in {time.perf_counter() - t0:.0f} s, untimed\n",
            flush=True,
        )
        print("| request | rows | p50 ms | p95 ms | raw SQL p50 ms | raw p95 ms | ratio (p50) |")
        print("|" + " --- |" * 7)
        unanswered_rows = []
        for days in (7, 30):
            call = get("/api/unanswered", {"days": str(days)})
            # Cold, as the first request after a restart: the query cache empty, the
            # vectors read from question_vectors.
            cold = []
            for _ in range(args.cold):
                cache._vectors.clear()  # type: ignore[attr-defined]
                cold += timed(call, 1)
            statements = captured.capture(call)
            body = call().get_json()
            warm = timed(call, args.repeat)
            raw_ms = timed(lambda s=statements: replay(raw_conn, s), args.repeat)
            # Where the time goes: the SQL and rows (collect), the kept vectors, grouping.
            with app.app_context():
                t0 = time.perf_counter()
                questions = unanswered.collect(days)
                sql_ms = (time.perf_counter() - t0) * 1000
                db.session.rollback()
                ordered = sorted(questions, key=lambda q: -q.count)[: unanswered.MAX_DISTINCT]
                t0 = time.perf_counter()
                found = vectors.stored_first(cache)([q.text for q in ordered])
                read_ms = (time.perf_counter() - t0) * 1000
            t0 = time.perf_counter()
            unanswered.group(questions, lambda texts, f=found: f)
            group_ms = (time.perf_counter() - t0) * 1000
            messages = body["total_questions"]
            unanswered_rows.append(
                (
                    days,
                    warm,
                    cold,
                    raw_ms,
                    messages,
                    len(questions),
                    body["total_groups"],
                    sql_ms,
                    read_ms,
                    group_ms,
                )  # fmt: skip
            )
            results.append((f"/api/unanswered days={days}, warm", warm, raw_ms))
            print(
                f"| /api/unanswered days={days}, warm | {body['total_groups']} groups of "
                f"{messages:,} questions ({len(questions):,} distinct) "
                f"| {statistics.median(warm):.1f} | {percentile(warm, 95):.1f} "
                f"| {statistics.median(raw_ms):.1f} | {percentile(raw_ms, 95):.1f} "
                f"| {summary.ratio(statistics.median(warm), statistics.median(raw_ms))} |"
            )
            print(
                f"| /api/unanswered days={days}, cold (first after a restart) | same "
                f"| {statistics.median(cold):.1f} | {max(cold):.1f} (max of {len(cold)}) "
                f"| {statistics.median(raw_ms):.1f} | {percentile(raw_ms, 95):.1f} "
                f"| {summary.ratio(statistics.median(cold), statistics.median(raw_ms))} |",
                flush=True,
            )
        if client.get("/api/overview", query_string={"days": "7"}).status_code == 404:
            print("| /api/overview days=7 | no such endpoint here: skipped | | | | | |")
        else:
            call = get("/api/overview", {"days": "7"})
            statements = captured.capture(call)
            call()
            app_ms = timed(call, args.repeat)
            raw_ms = timed(lambda s=statements: replay(raw_conn, s), args.repeat)
            results.append(("/api/overview days=7", app_ms, raw_ms))
            print(
                f"| /api/overview days=7 | the week's summary | {statistics.median(app_ms):.1f} "
                f"| {percentile(app_ms, 95):.1f} | {statistics.median(raw_ms):.1f} "
                f"| {percentile(raw_ms, 95):.1f} "
                f"| {summary.ratio(statistics.median(app_ms), statistics.median(raw_ms))} |",
                flush=True,
            )
        print("\nWhere /api/unanswered's time goes (each part alone, same data):")
        for days, _w, _c, _r, messages, distinct, _g, sql_ms, read_ms, group_ms in unanswered_rows:
            print(
                f"- {days} days: {messages:,} unanswered messages, {distinct:,} distinct texts "
                f"(grouped at most {unanswered.MAX_DISTINCT}): SQL and rows (collect) "
                f"{sql_ms:.0f} ms, their kept vectors read {read_ms:.0f} ms, "
                f"grouping (complete linkage) {group_ms:.0f} ms"
            )
        raw_conn.close()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        resources.stop_background()

    conv = [r for r in results if r[0].startswith("/api/conversations")]
    worst = max(conv, key=lambda r: percentile(r[1], 95))
    worst_raw = statistics.median(worst[2])
    p95s = [percentile(r[1], 95) for r in conv]
    summary.print_row(
        f"/api/conversations at {args.messages:,} logged messages (16)",
        f"< {TARGET_MS:.0f} ms (absolute)",
        f"p95 {min(p95s):.0f}-{max(p95s):.0f} ms over {len(conv)} requests (first page, "
        f"each channel and outcome, a window, text search, a thread); worst: {worst[0]} p50 "
        f"{statistics.median(worst[1]):.0f} ms, p95 {percentile(worst[1], 95):.0f} ms",
        f"the same SQL on psycopg, worst request's p50 {worst_raw:.1f} ms",
        summary.ratio(statistics.median(worst[1]), worst_raw),
        max(p95s) < TARGET_MS,
        "Staff pages at 100,000 logged messages (issue 16)",
        command=command,
    )
    parts = []
    met = True
    for days, warm, cold, _raw, _m, distinct, groups, *_ in unanswered_rows:
        parts.append(
            f"{days} days ({distinct:,} distinct questions, {groups} groups): warm p95 "
            f"{percentile(warm, 95):.0f} ms, cold {statistics.median(cold):.0f} ms"
        )
        met = met and percentile(warm, 95) < TARGET_MS and max(cold) < TARGET_MS
    raw = "; ".join(
        f"{days} days {statistics.median(r):.1f} ms" for days, _w, _c, r, *_ in unanswered_rows
    )
    summary.print_row(
        f"/api/unanswered at {args.messages:,} logged messages (16)",
        f"< {TARGET_MS:.0f} ms (absolute)",
        "; ".join(parts),
        f"the same SQL on psycopg: {raw}",
        summary.ratio(
            statistics.median(unanswered_rows[0][1]), statistics.median(unanswered_rows[0][3])
        )
        + " (7 days, warm)",
        met,
        "Staff pages at 100,000 logged messages (issue 16)",
        command=command,
    )


if __name__ == "__main__":
    sys.exit(main())
