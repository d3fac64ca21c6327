"""Delivery on the production path: gunicorn in async and passive mode, one Celery worker
(Redis, PostgreSQL, milvus-lite, the real model and real OCR), WeChat played by the
simulator, which serves the customers' pictures and retries each callback after 5 s.

Proven here: a picture is downloaded, read by OCR and answered together with the text
sent just before it; oversized or non-image media get a polite reply; "typing" shows
while the model writes; an FAQ hit is the reply to the first request in both modes, with
no worker involved; passive mode answers inside WeChat's tries, and an answer that misses
all three tries comes with the customer's next message, exactly once; 45009 is not
retried; a message that keeps failing ends `failed` and the sweeper gives up on it.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from celery import Celery
from PIL import Image, ImageDraw, ImageFont

from app.messages import images, voice
from app.messages.answering import FAILED_TEXT
from app.pipeline.answer import TOO_LONG_TEXT
from app.settings import Settings
from app.simulator.api import create_simulator_app
from app.simulator.callback_client import CallbackClient, Delivery
from app.simulator.server import serve_in_thread
from app.simulator.state import WeChatAPISimulator
from app.speech.errors import VOICE_NO_SPEECH, VOICE_UNREADABLE
from tests.conftest import PG_ADMIN
from tests.support import (
    BIN,
    TEST_MODEL,
    WECHAT,
    Processes,
    base_env,
    broker_url,
    free_port,
    healthy,
    run_flask,
    wait_until,
)

pytestmark = pytest.mark.slow

APP_ID = "wxde11very0123456"
SECRET = "delivery-secret"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
SEND = "/cgi-bin/message/custom/send"
WORKER = f"delivery@{socket.gethostname()}"
MAX_ATTEMPTS = 2
ANSWER_S = 300  # model answers on a small, shared machine
FAQ_Q = "可以开发票吗？"
CJK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
)
LATIN_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
PENDING_TEXT = Settings.model_fields["wechat_passive_pending_text"].default


@dataclass
class Stack:
    urls: dict[str, str]  # web tier by mode: async, passive, passive_noinstant
    sim: WeChatAPISimulator
    db: sa.Engine
    celery: Celery
    processes: Processes
    faq_answer: str

    def scalar(self, sql: str, **params: object) -> Any:
        with self.db.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def rows(self, sql: str, **params: object) -> list[Any]:
        with self.db.connect() as conn:
            return list(conn.execute(sa.text(sql), params))

    def client(self, web: str, mode: str = "plain") -> CallbackClient:
        return CallbackClient(
            self.urls[web] + "/wechat",
            WECHAT["token"],
            APP_ID,
            aes_key=AES_KEY if mode != "plain" else None,
            mode=mode,  # type: ignore[arg-type]
        )

    def sent_to(self, openid: str) -> list[dict]:
        return [m for m in self.sim.sent if m["touser"] == openid]

    def message(self, dedup_key: str) -> Any:
        rows = self.rows(
            "SELECT id, status, attempts, error, content, callback_tries, passive_reply "
            "FROM inbound_messages WHERE dedup_key=:k",
            k=dedup_key,
        )
        return rows[0] if rows else None

    def wait_status(self, dedup_key: str, status: str, timeout: float = ANSWER_S) -> Any:
        return wait_until(
            lambda: (row := self.message(dedup_key)) is not None and row.status == status and row,
            timeout,
            f"message {dedup_key} {status}",
        )

    def worker_log(self) -> str:
        return self.processes.log("delivery-worker")

    def consume(self, on: bool) -> None:
        """Celery's remote control: the worker stops or resumes taking answer tasks."""
        control = self.celery.control
        call = control.add_consumer if on else control.cancel_consumer
        replies = call("llm", destination=[WORKER], reply=True, timeout=10)
        assert replies, f"worker {WORKER} did not answer the remote control"


def _msg_id(xml: str) -> str:
    return xml.split("<MsgId>")[1].split("</MsgId>")[0]


def _openid() -> str:
    return f"o_dlv_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, processes: Processes, milvus_uri: str
) -> Iterator[Stack]:
    assert TEST_MODEL.is_file(), "run `flask model pull qwen2.5-0.5b` (make test does)"
    sim = WeChatAPISimulator(APP_ID, SECRET)
    handle = serve_in_thread(create_simulator_app(sim))
    db_name = f"wxcs_delivery_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')
    db_url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    db_url += f"/{db_name}"
    broker = broker_url("delivery")
    env = base_env(
        tmp_path_factory.mktemp("delivery-data"),
        DATABASE_URL=db_url,
        CELERY_BROKER_URL=broker,
        MILVUS_URI=milvus_uri,
        MILVUS_COLLECTION="kb_wechat_delivery",
        WECHAT_TOKEN=WECHAT["token"],
        WECHAT_APP_ID=APP_ID,
        WECHAT_APP_SECRET=SECRET,
        WECHAT_AES_KEY=AES_KEY,
        WECHAT_API_BASE_URL=handle.url,
        WECHAT_SEND_RETRIES="0",
        WECHAT_MEDIA_MAX_BYTES="200000",
        ANSWER_MAX_ATTEMPTS=str(MAX_ATTEMPTS),
        ANSWER_RETRY_BACKOFF_S="1",
        STALE_MESSAGE_AFTER_S="10",
        LLM_MAX_TOKENS="48",
    )
    for step in (["db", "upgrade"], ["kb", "ingest"]):
        done = run_flask(step, env)
        assert done.returncode == 0, done.stdout + done.stderr
    worker = [str(BIN / "celery"), "-A", "app.worker", "worker", "-Q", "llm,default"]
    processes.start(
        "delivery-worker", [*worker, "-c", "1", "-n", WORKER, "--loglevel", "INFO"], env
    )
    webs = {
        "async": {"WECHAT_REPLY_MODE": "async"},
        "passive": {"WECHAT_REPLY_MODE": "passive"},
        "passive_noinstant": {"WECHAT_REPLY_MODE": "passive", "WECHAT_INSTANT_FAQ": "false"},
    }
    urls = {}
    for name, extra in webs.items():
        port = free_port()
        processes.start(
            f"delivery-{name}",
            [
                str(BIN / "gunicorn"),
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--worker-class",
                "gthread",
                "--threads",
                "8",
                "app.wsgi:app",
            ],
            {**env, **extra},
        )
        urls[name] = f"http://127.0.0.1:{port}"
    engine = sa.create_engine(db_url)
    celery = Celery(broker=broker)
    try:
        for url in urls.values():
            wait_until(lambda u=url: healthy(u), 180, "healthz 200")
        for name in ("async", "passive"):  # the knowledge store loads in the background
            wait_until(
                lambda n=name: "FAQ table ready" in processes.log(f"delivery-{n}"),
                180,
                f"instant FAQ answers in the {name} web tier",
            )
        st = Stack(urls, sim, engine, celery, processes, _faq_answer())
        # The model loads now, not inside a test's timing window.
        openid = _openid()
        client = st.client("async")
        client.post(client.text(openid, "你们的客服电话是多少呀，我想问问"))
        wait_until(lambda: st.sent_to(openid), ANSWER_S, "warm-up answer")
        yield st
    finally:
        engine.dispose()
        for name in [*webs, "worker"]:
            processes.stop(f"delivery-{name}")
        handle.stop()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


def _faq_answer() -> str:
    """The stored answer of FAQ_Q, as the knowledge base has it."""
    import csv

    root = Path(__file__).resolve().parents[2]
    with open(root / "knowledge" / "faq.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["question"] == FAQ_Q:
                return row["answer"].strip()
    raise AssertionError(f"{FAQ_Q} is not in knowledge/faq.csv")


# --- pictures ---------------------------------------------------------------------------


def _dialog_png() -> tuple[bytes, list[str]]:
    """An error dialog as a phone would screenshot it; Chinese when the machine has a CJK
    font, else English (RapidOCR reads both). Returns the PNG and words OCR must find."""
    cjk = next((f for f in CJK_FONTS if Path(f).is_file()), None)
    if cjk:
        lines = ["支付失败", "订单号：2026112188", "错误代码：E1005", "银行卡已被重复扣款"]
        expect = ["支付失败", "2026112188", "E1005"]
    else:
        lines = ["Payment failed", "Order No. 2026112188", "Error code: E1005", "Charged twice"]
        expect = ["Payment", "2026112188", "E1005"]
    font = ImageFont.truetype(cjk or LATIN_FONT, 32)
    img = Image.new("RGB", (720, 420), (245, 245, 245))
    draw = ImageDraw.Draw(img)
    draw.rectangle([40, 40, 680, 380], fill="white", outline=(200, 200, 200), width=3)
    draw.rectangle([40, 40, 680, 110], fill=(220, 60, 60))
    draw.text((70, 55), lines[0], font=font, fill="white")
    for i, line in enumerate(lines[1:]):
        draw.text((70, 150 + 70 * i), line, font=font, fill="black")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue(), expect


def test_picture_is_read_and_answered_with_the_text_sent_before_it(stack: Stack) -> None:
    png, expect = _dialog_png()
    stack.sim.add_media("MEDIA_DIALOG_1", png, "image/png")
    openid = _openid()
    client = stack.client("async")
    said = "付款的时候弹出这个，钱是不是扣了两次？"
    text_xml = client.text(openid, said)
    # The FAQ on double charges answers the text at once (the reply to this request), or
    # the worker does, through the customer-service API.
    instant = "<Content>" in client.post(text_xml).text
    image_xml = client.image(openid, "http://mmbiz.qpic.cn/dialog.png", "MEDIA_DIALOG_1")
    assert client.post(image_xml).text == ""

    row = stack.wait_status(_msg_id(image_xml), "answered")
    question = row.content
    for word in expect:
        assert word in question, question  # the picture's text, read by OCR...
    assert said in question  # ...with what the customer wrote just before
    expected = 1 if instant else 2
    answers = wait_until(
        lambda: len(stack.sent_to(openid)) >= expected and stack.sent_to(openid), 60, "answers"
    )
    image_answer = stack.scalar(
        "SELECT content FROM outbound_replies WHERE inbound_id=:i", i=row.id
    )
    assert image_answer in [m["content"] for m in answers]
    assert image_answer not in (images.IMAGE_NO_TEXT, images.IMAGE_UNREADABLE)
    media_calls = [c for c in stack.sim.calls if c["path"] == "/cgi-bin/media/get"]
    assert media_calls and media_calls[-1]["http_status"] == 200


@pytest.mark.parametrize(
    ("media", "content_type", "expected"),
    [
        (b"\xff\xd8\xff\xe0" + b"\0" * 300_000, "image/jpeg", images.IMAGE_TOO_LARGE),
        (
            b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n",
            "image/jpeg",
            images.IMAGE_UNREADABLE,
        ),
        (None, "", images.IMAGE_EXPIRED),  # never uploaded: media/get answers 40007
    ],
    ids=["over-WECHAT_MEDIA_MAX_BYTES", "pdf-named-jpeg", "expired-media-id"],
)
def test_unusable_media_gets_a_polite_reply(
    stack: Stack, media: bytes | None, content_type: str, expected: str
) -> None:
    media_id = f"M_{uuid.uuid4().hex[:10]}"
    if media is not None:
        stack.sim.add_media(media_id, media, content_type)
    openid = _openid()
    client = stack.client("async")
    xml = client.image(openid, "http://mmbiz.qpic.cn/x.jpg", media_id)
    assert client.post(xml).status_code == 200
    row = stack.wait_status(_msg_id(xml), "answered", 120)
    assert row.error == ""
    assert [m["content"] for m in stack.sent_to(openid)] == [expected]


# --- voice ------------------------------------------------------------------------------

VOICE = Path(__file__).parents[1] / "fixtures" / "voice"


@pytest.mark.parametrize("audio_format", ["amr", "speex"])
def test_voice_without_recognition_is_heard_and_answered(stack: Stack, audio_format: str) -> None:
    """An account without speech recognition sends no Recognition: the worker downloads
    the audio (media/get), transcribes it here, stores the words and answers them."""
    media_id = f"V_{uuid.uuid4().hex[:10]}"
    stack.sim.add_media(media_id, (VOICE / f"zh_order.{audio_format}").read_bytes(), "audio/amr")
    openid = _openid()
    client = stack.client("async")
    xml = client.voice(openid, media_id, None, audio_format=audio_format)
    assert client.post(xml).status_code == 200

    row = stack.wait_status(_msg_id(xml), "answered")
    assert "订单" in row.content, row.content  # what the customer said, stored as its text
    sent = wait_until(lambda: stack.sent_to(openid), 60, "the answer")
    assert len(sent) >= 1
    assert sent[0]["content"] not in (voice.VOICE_EXPIRED, voice.VOICE_NOT_NOW, VOICE_UNREADABLE)
    media_calls = [c for c in stack.sim.calls if c["path"] == "/cgi-bin/media/get"]
    assert media_calls and media_calls[-1]["http_status"] == 200


def test_undecodable_voice_gets_a_polite_reply(stack: Stack) -> None:
    media_id = f"V_{uuid.uuid4().hex[:10]}"
    stack.sim.add_media(media_id, b"#!AMR\n" + bytes(range(256)) * 4, "audio/amr")
    openid = _openid()
    client = stack.client("async")
    xml = client.voice(openid, media_id, None)
    assert client.post(xml).status_code == 200
    row = stack.wait_status(_msg_id(xml), "answered", 120)
    assert row.error == ""
    assert [m["content"] for m in stack.sent_to(openid)] in (
        [VOICE_UNREADABLE],
        [VOICE_NO_SPEECH],
    )


# --- typing -----------------------------------------------------------------------------


def test_typing_shows_while_the_model_writes(stack: Stack) -> None:
    openid = _openid()
    client = stack.client("async")
    client.post(client.text(openid, "我买的空气炸锅用了两个月坏了，还能保修吗？"))
    [answer] = wait_until(lambda: stack.sent_to(openid), ANSWER_S, "the answer")
    typing = [t for t in stack.sim.typing if t["touser"] == openid]
    assert typing and typing[0]["command"] == "Typing"
    assert typing[0]["at"] <= answer["at"]


# --- an FAQ hit: the reply to the first request, in both modes ------------------------------


@pytest.mark.parametrize(("web", "mode"), [("async", "plain"), ("passive", "safe")])
def test_faq_hit_is_the_reply_to_the_first_request(stack: Stack, web: str, mode: str) -> None:
    stack.consume(False)  # no worker: the web tier alone answers
    try:
        openid = _openid()
        client = stack.client(web, mode)
        delivery = client.deliver(client.text(openid, FAQ_Q))
        assert delivery.ok, delivery
        assert delivery.answered_on == 1
        assert delivery.reply is not None and delivery.reply["Content"] == stack.faq_answer
        row = stack.message(_msg_id(delivery.xml))
        assert row.status == "answered"
        replies = stack.rows(
            "SELECT status, via, carried_by FROM outbound_replies WHERE inbound_id=:i", i=row.id
        )
        assert [tuple(r) for r in replies] == [("sent", "passive", row.id)]
        assert stack.sent_to(openid) == []  # nothing through the customer-service API
    finally:
        stack.consume(True)


#: The README's demo question, and ten ways customers ask sample FAQ entries that the
#: entries do not list: each is that entry's by meaning (app/faq/matching.py).
UNLISTED = {
    "我的订单还没发货，怎么办？": "下单后多久发货？",
    "开发票怎么弄": "可以开发票吗？",
    "退款几天到账": "退款多久能到账？",
    "积分多久过期": "会员积分怎么获得和使用？",
    "发货用的是什么快递": "你们用什么快递发货？",
    "降价了能退差价吗": "买完降价了可以退差价吗？",
    "收货地址能改吗": "下单后可以修改收货地址吗？",
    "退货的运费谁承担": "退货运费谁出？",
    "订单怎么取消": "怎么取消订单？",
    "物流信息在哪看": "怎么查询物流？",
    "换货怎么换": "可以换货吗？",
}


def _stored_answers() -> dict[str, str]:
    import csv

    root = Path(__file__).resolve().parents[2]
    with open(root / "knowledge" / "faq.csv", encoding="utf-8") as fh:
        return {row["question"]: row["answer"].strip() for row in csv.DictReader(fh)}


def test_readme_demo_and_unlisted_paraphrases_get_the_stored_answer_at_once(
    stack: Stack,
) -> None:
    """Each is answered with its entry's stored answer as the reply to WeChat's first
    request, by the web tier alone (no worker takes anything), and the stored outcome
    says it was an FAQ answer found by meaning."""
    answers = _stored_answers()
    stack.consume(False)
    try:
        client = stack.client("async")
        for question, entry in UNLISTED.items():
            openid = _openid()
            delivery = client.deliver(client.text(openid, question))
            assert delivery.ok and delivery.answered_on == 1, (question, delivery)
            assert delivery.reply is not None, question
            assert delivery.reply["Content"] == answers[entry], question
            [(outcome, detail)] = stack.rows(
                "SELECT outcome, outcome_detail FROM inbound_messages WHERE dedup_key=:k",
                k=_msg_id(delivery.xml),
            )
            assert outcome == "faq", question
            found = json.loads(detail)
            assert found["question"] == entry and found["where"] == "web", found
            assert found["via"] in ("meaning", "characters"), found
            assert stack.sent_to(openid) == []
    finally:
        stack.consume(True)


def test_an_unlisted_paraphrase_is_the_passive_reply_in_safe_mode(stack: Stack) -> None:
    stack.consume(False)
    try:
        client = stack.client("passive", "safe")
        delivery = client.deliver(client.text(_openid(), "开发票怎么弄"))
        assert delivery.ok and delivery.answered_on == 1
        assert delivery.reply is not None
        assert delivery.reply["Content"] == _stored_answers()["可以开发票吗？"]
    finally:
        stack.consume(True)


# --- passive mode: held tries, late answers ----------------------------------------------


def _deliver_in_background(client: CallbackClient, xml: str) -> tuple[threading.Thread, list]:
    out: list[Delivery] = []
    thread = threading.Thread(target=lambda: out.append(client.deliver(xml)), daemon=True)
    thread.start()
    return thread, out


def test_passive_answer_comes_back_on_a_later_try(stack: Stack) -> None:
    stack.consume(False)
    try:
        openid = _openid()
        client = stack.client("passive_noinstant")
        xml = client.text(openid, FAQ_Q)
        thread, out = _deliver_in_background(client, xml)
        wait_until(
            lambda: (row := stack.message(_msg_id(xml))) is not None and row.callback_tries >= 2,
            20,
            "WeChat's second try",
        )
    finally:
        stack.consume(True)  # the worker answers while the second try is held
    thread.join(30)
    [delivery] = out
    assert delivery.ok, delivery
    assert delivery.attempts[0].status is None  # the first try lapsed on purpose
    assert delivery.answered_on in (2, 3)
    assert delivery.reply is not None and delivery.reply["Content"] == stack.faq_answer
    assert stack.message(_msg_id(xml)).status == "answered"
    assert stack.sent_to(openid) == []


def test_passive_late_answer_comes_with_the_next_message_exactly_once(stack: Stack) -> None:
    openid = _openid()
    client = stack.client("passive_noinstant")
    question = "我买的电饭煲内胆有划痕，能换一个新的吗？"
    stack.consume(False)
    try:
        first = client.deliver(client.text(openid, question))
    finally:
        stack.consume(True)
    # Three tries, none answered in time: the last one says the answer is on its way.
    assert first.ok, first
    assert [a.status for a in first.attempts] == [None, None, 200]
    assert first.reply is not None and first.reply["Content"] == PENDING_TEXT
    first_row = stack.wait_status(_msg_id(first.xml), "ready")
    [late] = stack.rows(
        "SELECT id, content FROM outbound_replies WHERE inbound_id=:i", i=first_row.id
    )
    assert late.content not in PENDING_TEXT

    # The next message (an FAQ question) carries the late answer, then its own.
    second_xml = client.text(openid, FAQ_Q)
    second = client.deliver(second_xml)
    assert second.ok and second.answered_on == 1, second
    content = second.reply["Content"]
    assert content.startswith(late.content)
    # Its own answer follows when ready within the try (the worker is free: usually).
    assert stack.faq_answer in content or PENDING_TEXT in content
    # WeChat's retry of that message gets the very same reply; nothing is carried twice.
    again = client.post(second_xml)
    assert client.decrypt_reply(again.text)["Content"] == content
    third = client.deliver(client.text(openid, "满多少包邮？"))
    assert late.content not in third.reply["Content"]

    second_row = stack.message(_msg_id(second_xml))
    assert stack.message(_msg_id(first.xml)).status == "answered"
    assert [
        tuple(r)
        for r in stack.rows(
            "SELECT status, via, carried_by FROM outbound_replies WHERE inbound_id=:i",
            i=first_row.id,
        )
    ] == [("sent", "passive", second_row.id)]
    assert stack.sent_to(openid) == []  # passive mode never uses the customer-service API


def test_passive_late_answer_is_not_carried_after_a_day(stack: Stack) -> None:
    openid = _openid()
    client = stack.client("passive_noinstant")
    stack.consume(False)
    try:
        first = client.deliver(client.text(openid, "电饭煲的内锅涂层掉了怎么办？"))
    finally:
        stack.consume(True)
    assert first.reply is not None and first.reply["Content"] == PENDING_TEXT
    first_row = stack.wait_status(_msg_id(first.xml), "ready")
    # The customer comes back two days later (past WECHAT_PASSIVE_KEEP_S, one day).
    with stack.db.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE inbound_messages SET created_at = created_at - interval '2 days' "
                "WHERE id = :i"
            ),
            {"i": first_row.id},
        )
    later = client.deliver(client.text(openid, FAQ_Q))
    assert later.ok and later.reply is not None
    [late] = stack.rows(
        "SELECT content, status FROM outbound_replies WHERE inbound_id=:i", i=first_row.id
    )
    assert late.content not in later.reply["Content"]
    assert late.status == "pending"  # kept for the record, never sent


# --- failures: 45009, attempts spent, the sweeper ---------------------------------------


def test_a_question_too_long_for_the_model_gets_a_request_to_shorten_it(stack: Stack) -> None:
    """A pasted page (3,000 characters) used to fail every attempt on the context window:
    "typing…" again and again, then silence."""
    openid = _openid()
    client = stack.client("async")
    text = "我上周买的空气炸锅用了几天就不加热了，" * 150 + "请问能退吗？"
    xml = client.text(openid, text)
    assert client.post(xml).status_code == 200
    [sent] = wait_until(lambda: stack.sent_to(openid), ANSWER_S, "the reply")
    assert sent["content"] == TOO_LONG_TEXT
    row = stack.wait_status(_msg_id(xml), "answered", 30)
    assert row.attempts == 1
    outcome = stack.scalar("SELECT outcome FROM inbound_messages WHERE id=:i", i=row.id)
    assert outcome == "refused"


def test_daily_quota_45009_is_not_retried(stack: Stack) -> None:
    stack.sim.inject(SEND, 45009, times=1)
    openid = _openid()
    client = stack.client("async")
    xml = client.text(openid, "你们的吸尘器吸力怎么样，适合养猫的家庭吗？")
    client.post(xml)
    row = stack.wait_status(_msg_id(xml), "failed")
    assert "45009" in row.error and row.attempts == 1
    [reply] = stack.rows(
        "SELECT status, errcode FROM outbound_replies WHERE inbound_id=:i", i=row.id
    )
    assert tuple(reply) == ("failed", 45009)
    wait_until(
        lambda: f"message {row.id} not deliverable: WeChat API error 45009" in stack.worker_log(),
        30,
        "the failure logged",
    )
    assert f"answer for message {row.id} failed" not in stack.worker_log()  # no Celery retry
    sends = [c for c in stack.sim.calls if c["path"] == SEND and c["errcode"] == 45009]
    assert len(sends) == 1
    assert stack.sent_to(openid) == []


def test_a_message_that_keeps_failing_ends_failed_after_its_attempts(stack: Stack) -> None:
    stack.sim.inject(SEND, -1, times=MAX_ATTEMPTS)  # WECHAT_SEND_RETRIES=0: one send a run
    openid = _openid()
    client = stack.client("async")
    xml = client.text(openid, "你们的枕芯是什么材质的？会不会掉毛？")
    client.post(xml)
    row = stack.wait_status(_msg_id(xml), "failed")
    assert row.attempts == MAX_ATTEMPTS
    assert f"gave up after {MAX_ATTEMPTS} attempts" in row.error and "-1" in row.error
    wait_until(
        lambda: f"message {row.id} failed: gave up after" in stack.worker_log(), 30, "the log"
    )
    assert stack.sent_to(openid) == []


def _queued_tasks(stack: Stack) -> list[tuple[bytes, int]]:
    """The answer tasks waiting in Redis, as (raw entry, message id), read the way kombu
    stores them (the broker's own format, not the product's reader)."""
    import base64

    import redis

    client = redis.Redis.from_url(stack.celery.conf.broker_url)
    out = []
    for raw in client.lrange("llm", 0, -1):
        payload = json.loads(raw)
        args = json.loads(base64.b64decode(payload["body"]))[0]
        out.append((raw, int(args[0])))
    client.close()
    return out


def test_sweeper_leaves_a_message_waiting_its_turn_and_requeues_a_lost_one(
    stack: Stack,
) -> None:
    """Two questions wait longer than STALE_MESSAGE_AFTER_S while the worker is busy; the
    task of one was lost (as when the broker failed as it was stored). The sweeper queues
    the lost one again and leaves the waiting one alone: each is answered once."""
    stack.consume(False)
    client = stack.client("async")
    waiting, lost = _openid(), _openid()
    xmls = {}
    try:
        for openid in (waiting, lost):
            xmls[openid] = client.text(openid, "你们的床垫软硬怎么选？")
            client.post(xmls[openid])
        rows = {o: stack.wait_status(_msg_id(x), "received", 30) for o, x in xmls.items()}
        wait_until(lambda: len(_queued_tasks(stack)) == 2, 30, "both tasks in the queue")
        import redis

        broker = redis.Redis.from_url(stack.celery.conf.broker_url)
        [(raw, _)] = [t for t in _queued_tasks(stack) if t[1] == rows[lost].id]
        assert broker.lrem("llm", 1, raw) == 1
        broker.close()
        with stack.db.begin() as conn:  # both have waited a long time
            conn.execute(
                sa.text(
                    "UPDATE inbound_messages SET updated_at = now() - interval '1 hour' "
                    "WHERE id IN (:a, :b)"
                ),
                {"a": rows[waiting].id, "b": rows[lost].id},
            )
        for _ in range(3):  # three sweeps: the waiting one is never queued twice
            before = stack.worker_log().count("sweep_unanswered")
            stack.celery.send_task("app.tasks.sweep_unanswered", queue="default")
            wait_until(
                lambda b=before: stack.worker_log().count("sweep_unanswered") >= b + 2,
                30,
                "the sweep done",
            )
        queued = sorted(message for _, message in _queued_tasks(stack))
        assert queued == sorted([rows[waiting].id, rows[lost].id])
    finally:
        stack.consume(True)
    for openid in (waiting, lost):
        wait_until(lambda o=openid: stack.sent_to(o), ANSWER_S, "the answer")
    for openid, xml in xmls.items():
        assert len(stack.sent_to(openid)) == 1
        assert stack.message(_msg_id(xml)).attempts == 1


def test_sweeper_gives_up_on_a_message_whose_attempts_are_spent(stack: Stack) -> None:
    """A message left `received` after its retries (the task lost, or Celery's retries
    exhausted) is failed by the sweeper with the reason, not queued again forever."""
    skipped_before = stack.worker_log().count("'skipped'")
    stack.consume(False)
    openid = _openid()
    try:
        client = stack.client("async")
        xml = client.text(openid, "你们的毛巾可以机洗吗？")
        client.post(xml)
        row = stack.wait_status(_msg_id(xml), "received", 30)
        with stack.db.begin() as conn:  # as its earlier, failed runs left it
            conn.execute(
                sa.text(
                    "UPDATE inbound_messages SET attempts=:a, error='WeChat API error -1', "
                    "updated_at = now() - interval '1 hour' WHERE id=:i"
                ),
                {"a": MAX_ATTEMPTS, "i": row.id},
            )
        stack.celery.send_task("app.tasks.sweep_unanswered", queue="default")
        failed = stack.wait_status(_msg_id(xml), "failed", 60)
        assert f"gave up after {MAX_ATTEMPTS} attempts" in failed.error
        wait_until(
            lambda: f"message {row.id} failed: gave up after" in stack.worker_log(), 30, "the log"
        )
    finally:
        stack.consume(True)
    # The task still queued from the callback finds the message failed and does nothing.
    wait_until(
        lambda: stack.worker_log().count("'skipped'") > skipped_before,
        60,
        "the leftover task skipped",
    )
    assert stack.message(_msg_id(xml)).status == "failed"
    # No answer was ever stored: the customer is told once, not left waiting.
    assert [m["content"] for m in stack.sent_to(openid)] == [FAILED_TEXT]
