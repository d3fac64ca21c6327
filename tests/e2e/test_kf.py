"""The 微信客服 (WeCom kf) channel on the production path: encrypted notifications into
gunicorn's /kf, each queued as a sync (Celery task sync_kf) for a worker on the default
queue (two processes, one reader per account between them), which reads kf/sync_msg from
the cursor stored in PostgreSQL and takes the messages in; answers by a second worker on
the model's queue (threads, the real test model, the local speech model), sent with
kf/send_msg; Redis as the broker; 微信客服 played by its simulator (app/simulator/kf.py),
whose notifications the tests deliver.

What is proven: a burst of 20 messages from 5 customers within a second, its callbacks
delivered twice and read over several pages, is answered exactly once per message, and
origin 5 messages (a servicer's, and our own replies read back) never are; enter_session
is greeted through its welcome_code; "转人工" moves the session to the queue and tells the
customer; while a person holds a session the bot stays silent, also when the person took
it between the sync and the answer (no 95018 sent, no retry); a voice message is
downloaded, transcribed and answered; a sync worker killed with SIGKILL while it takes in
a page loses no message and answers none twice: the next worker resumes the page.
"""

from __future__ import annotations

import io
import json
import signal
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app import layout
from app.channels.kf.api import SEND_MSG, STATE_GET, ServiceState
from app.messages.voice import VOICE_EXPIRED, VOICE_NOT_NOW
from app.settings import Settings
from app.simulator.kf import KfSimulator
from app.simulator.kf_callback import KfCallbackClient
from app.simulator.kf_rules import Notification
from app.simulator.kf_server import create_kf_simulator_app
from app.simulator.server import serve_in_thread
from app.speech.errors import VOICE_NO_SPEECH, VOICE_UNREADABLE
from tests.conftest import temp_pg_database
from tests.support import (
    TEST_MODEL,
    Processes,
    base_env,
    broker_url,
    start_service,
    wait_until,
    worker_args,
)

pytestmark = pytest.mark.slow

CORP, SECRET = "ww0kfe2e0123456789", "kf-e2e-secret"
TOKEN, AES = "kfE2Etoken", "KfE2EaesKey0123456789abcdefghijklmnopqrstuv"
SERVICER = "zhangsan"
ANSWER_S = 240  # the first answer loads the model on a small, shared machine
SYNC_S = 60
DEFAULTS = Settings.model_fields
VOICE = Path(__file__).parents[1] / "fixtures" / "voice"
#: FAQ entries' questions and listed paraphrases: answered with the stored answer.
QUESTIONS = [
    "我的订单还没发货",
    "满多少包邮？",
    "能开发票吗",
    "怎么查询物流？",
    "退款多久能到账？",
    "发什么快递",
    "积分有什么用",
    "能换个颜色吗",
]


@dataclass
class StateGate:
    """WSGI middleware in front of the simulator: holds one kf/service_state/get request
    about ``customer`` (after letting ``skip`` of them through) until released, so a test
    can act while a worker waits on it (take the session, kill the worker)."""

    app: Callable[..., Any]
    customer: str = ""
    skip: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)
    _release: threading.Event = field(default_factory=threading.Event)

    def arm(self, customer: str, skip: int = 0) -> None:
        self.arrived.clear()
        self._release.clear()
        self.customer, self.skip = customer, skip

    def release(self) -> None:
        self.customer = ""
        self._release.set()

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        if environ.get("PATH_INFO") == STATE_GET and self.customer:
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            if json.loads(body or b"{}").get("external_userid") == self.customer:
                if self.skip:
                    self.skip -= 1
                else:
                    self.customer = ""
                    self.arrived.set()
                    self._release.wait(ANSWER_S)
        return self.app(environ, start_response)


@dataclass
class KfService:
    url: str
    sim: KfSimulator
    gate: StateGate
    db: sa.Engine
    env: dict[str, str]
    processes: Processes

    def deliver(self, notes: Iterable[Notification], together: int = 8) -> None:
        """WeCom's notifications to our /kf, ``together`` at a time; each acknowledged."""
        client = KfCallbackClient(self.url + "/kf", TOKEN, CORP, AES)
        with ThreadPoolExecutor(together) as pool:
            done = list(pool.map(lambda n: client.notify(n.open_kfid, n.token), notes))
        assert all(d.ok for d in done), [d.reply_error for d in done if not d.ok]

    def notify(self) -> list[Notification]:
        """Delivers every notification the simulator owes; returns them."""
        notes = self.sim.take_notifications()
        self.deliver(notes)
        return notes

    def rows(self, sql: str, **params: object) -> list[Any]:
        with self.db.connect() as conn:
            return list(conn.execute(sa.text(sql), params))

    def status(self, msgid: str) -> str:
        rows = self.rows(
            "SELECT status FROM inbound_messages WHERE channel='kf' AND dedup_key=:k", k=msgid
        )
        return rows[0].status if rows else ""

    def all_answered(self, msgids: Iterable[str]) -> bool:
        return all(self.status(m) == "answered" for m in msgids)

    def sent_to(self, customer: str, via: str = "send_msg") -> list[dict]:
        return [m for m in self.sim.sent if m["touser"] == customer and m["via"] == via]

    def replies_sent(self, customer: str) -> int:
        """Reply pieces the store says went out to the customer."""
        return self.rows(
            "SELECT count(*) AS n FROM outbound_replies r JOIN inbound_messages m "
            "ON r.inbound_id = m.id WHERE m.channel='kf' AND m.customer=:c AND r.status='sent'",
            c=customer,
        )[0].n

    def read_to_end(self) -> bool:
        """The stored cursor is at the end of the account's log, nothing left pending."""
        rows = self.rows("SELECT cursor, pending FROM kf_cursors")
        return bool(rows) and rows[0].pending == "" and self.sim.unread(rows[0].cursor) == 0

    def start_sync_worker(self) -> None:
        # Two processes: two syncs of the account at once, kept to one reader.
        argv = worker_args("kfsync", 2, "prefork", (layout.DEFAULT_QUEUE,))
        self.processes.start("kf-sync", argv, self.env)


def _customer() -> str:
    return f"wm{uuid.uuid4().hex[:20]}"


@pytest.fixture(scope="module")
def kf(
    tmp_path_factory: pytest.TempPathFactory, processes: Processes, milvus_uri: str
) -> Iterator[KfService]:
    assert TEST_MODEL.is_file(), "run `flask model pull qwen2.5-0.5b` (make test does)"
    sim = KfSimulator(CORP, SECRET, servicers={SERVICER}, with_rid=True)
    sim_app = create_kf_simulator_app(sim)  # no callback: the tests deliver notifications
    gate = StateGate(sim_app.wsgi_app)
    sim_app.wsgi_app = gate  # type: ignore[method-assign]
    handle = serve_in_thread(sim_app)
    with temp_pg_database() as database_url:
        env = base_env(
            tmp_path_factory.mktemp("kf-data"),
            DATABASE_URL=database_url,
            CELERY_BROKER_URL=broker_url("kf"),
            MILVUS_URI=milvus_uri,
            MILVUS_COLLECTION="kb_kf_e2e",
            KF_TOKEN=TOKEN,
            KF_ENCODING_AES_KEY=AES,
            KF_CORP_ID=CORP,
            KF_SECRET=SECRET,
            KF_API_BASE_URL=handle.url,
            LLM_MAX_TOKENS="48",
            LLM_N_THREADS="1",
            OMP_NUM_THREADS="1",
            WECHAT_INSTANT_FAQ="false",
            WECHAT_HTTP_TIMEOUT_S="30",  # a request the gate holds waits for the test
        )
        # Answers: one model in one process, two at a time (threads, as in production).
        url = start_service(
            processes, env, "kf", web_workers=1, concurrency=2, pool="threads",
            queues=(layout.LLM_QUEUE,),
        )  # fmt: skip
        engine = sa.create_engine(database_url)
        service = KfService(url, sim, gate, engine, env, processes)
        service.start_sync_worker()  # the syncs, on the default queue
        try:
            warm = _customer()
            msgid = sim.customer_sends(warm, QUESTIONS[0])
            service.notify()
            wait_until(lambda: service.status(msgid) == "answered", ANSWER_S, "warm-up answer")
            yield service
        finally:
            gate.release()
            engine.dispose()
            processes.stop("kf-web")
            processes.stop("kf-worker")
            processes.stop("kf-sync")
            handle.stop()


def test_enter_session_is_greeted_with_its_welcome_code(kf: KfService) -> None:
    customer = _customer()
    code = kf.sim.customer_enters(customer, scene="menu")
    assert code  # WeChat lets the API greet: no welcome in 48 h, nothing written yet
    notes = kf.notify()
    wait_until(lambda: kf.sent_to(customer, "send_msg_on_event"), SYNC_S, "the welcome")
    kf.sim.repeat(kf.sim.messages()[-1]["msgid"])  # WeChat hands the event out again
    kf.deliver(notes + kf.sim.take_notifications())
    wait_until(kf.read_to_end, SYNC_S, "the repeat read")
    [welcome] = kf.sent_to(customer, "send_msg_on_event")
    assert (welcome["kind"], welcome["payload"]["code"]) == ("welcome", code)
    assert welcome["content"] == DEFAULTS["kf_welcome"].default
    assert kf.sent_to(customer) == []


def test_a_burst_is_answered_exactly_once_and_origin_5_never(kf: KfService) -> None:
    """20 messages from 5 customers at once, read 4 a page; their 20 callbacks delivered
    8 at a time, then all again; WeChat repeating two messages; a servicer writing from
    the WeCom client and every reply of ours coming back as origin 5 (as peers report)."""
    kf.sim.page_size, kf.sim.echo_api_sends = 4, True
    customers = [_customer() for _ in range(5)]
    asked: dict[str, str] = {}
    try:
        for i in range(4):
            for n, customer in enumerate(customers):
                asked[kf.sim.customer_sends(customer, QUESTIONS[(i + n) % 8])] = customer
        first = next(iter(asked))
        kf.sim.repeat(first)
        kf.sim.repeat(list(asked)[7])
        kf.sim.servicer_sends(customers[0], "您好，我是客服小张", SERVICER)
        notes = kf.sim.take_notifications()
        assert len(notes) == 23
        pages = kf.sim.pages_served
        kf.deliver(notes)
        kf.deliver(notes)  # WeCom repeats callbacks it is not sure arrived
        wait_until(lambda: kf.all_answered(asked), ANSWER_S, "20 answers")
        # Our replies, read back as origin 5, notified and read too: none is answered.
        wait_until(lambda: len(kf.notify()) == 0 and kf.read_to_end(), SYNC_S, "the echoes read")
    finally:
        kf.sim.page_size, kf.sim.echo_api_sends = 1000, False
    for customer in customers:
        rows = kf.rows(
            "SELECT dedup_key, status FROM inbound_messages WHERE channel='kf' AND customer=:c",
            c=customer,
        )
        mine = sorted(msgid for msgid, c in asked.items() if c == customer)
        assert sorted(r.dedup_key for r in rows) == mine  # no origin 5 stored
        sent = kf.sent_to(customer)
        assert len(sent) == kf.replies_sent(customer) >= 4  # each piece once, none twice
        assert not any(m["over_limit"] for m in sent)
    assert kf.sim.pages_served - pages >= 6  # 23 messages, 4 a page, through has_more
    assert not [c for c in kf.sim.calls if c["path"] == SEND_MSG and c["errcode"]]


def test_a_session_held_by_a_person_gets_no_bot_reply(kf: KfService) -> None:
    customer = _customer()
    msgid = kf.sim.customer_sends(customer, QUESTIONS[1])
    kf.notify()
    wait_until(lambda: kf.status(msgid) == "answered", ANSWER_S, "the first answer")
    kf.sim.servicer_takes(customer, SERVICER)
    held = kf.sim.customer_sends(customer, QUESTIONS[2])
    kf.notify()
    wait_until(lambda: kf.status(held) == "handoff", SYNC_S, "the message recorded for the person")

    # Taken by a person between the sync and the answer: the worker reads the state
    # before sending (the gate holds that read while the servicer takes the session).
    late = _customer()
    kf.gate.arm(late, skip=1)  # the sync's read passes; the worker's is held
    msgid = kf.sim.customer_sends(late, QUESTIONS[3])
    kf.notify()
    assert kf.gate.arrived.wait(ANSWER_S), "the worker never read the session's state"
    kf.sim.servicer_takes(late, SERVICER)
    kf.gate.release()
    wait_until(lambda: kf.status(msgid) == "handoff", SYNC_S, "the answer ended as handed off")
    [row] = kf.rows(
        "SELECT attempts, outcome, error FROM inbound_messages WHERE dedup_key=:k", k=msgid
    )
    assert (row.attempts, row.outcome) == (1, "handed_off") and "95018" in row.error
    assert len(kf.sent_to(customer)) == 1 and kf.sent_to(late) == []
    assert not [c for c in kf.sim.calls if c["errcode"] == 95018]  # never even tried


def test_asking_for_a_person_moves_the_session_to_the_queue(kf: KfService) -> None:
    customer = _customer()
    msgid = kf.sim.customer_sends(customer, "转人工")
    kf.notify()
    wait_until(
        lambda: kf.sim.session(customer).state == ServiceState.QUEUED, SYNC_S, "the hand-over"
    )
    wait_until(lambda: kf.status(msgid) == "handoff", SYNC_S, "the message stored")
    [told] = kf.sent_to(customer, "send_msg_on_event")
    assert (told["kind"], told["content"]) == ("queue", DEFAULTS["kf_handoff_reply"].default)
    [request] = kf.rows(
        "SELECT source, conversation_id, status FROM handoff_requests WHERE customer=:c",
        c=customer,
    )
    assert (request.source, request.conversation_id, request.status) == (
        "kf",
        kf.sim.default_account,
        "open",
    )
    assert kf.sent_to(customer) == []


def test_a_voice_message_is_transcribed_and_answered(kf: KfService) -> None:
    media_id = f"V_{uuid.uuid4().hex[:12]}"
    kf.sim.add_media(media_id, (VOICE / "zh_order.amr").read_bytes(), "audio/amr")
    customer = _customer()
    msgid = kf.sim.customer_sends(customer, msgtype="voice", body={"media_id": media_id})
    kf.notify()
    wait_until(lambda: kf.status(msgid) == "answered", ANSWER_S, "the voice answered")
    [row] = kf.rows(
        "SELECT content, media_format FROM inbound_messages WHERE dedup_key=:k", k=msgid
    )
    assert "订单" in row.content and row.media_format == "amr", row
    assert {r["voice_format"] for r in kf.sim.sync_requests} == {0}  # AMR asked for
    sent = kf.sent_to(customer)
    assert sent and sent[0]["content"] not in (
        VOICE_UNREADABLE,
        VOICE_NO_SPEECH,
        VOICE_NOT_NOW,
        VOICE_EXPIRED,
    )


def test_the_cursor_survives_a_sync_worker_killed_mid_page(kf: KfService) -> None:
    """The worker is killed (SIGKILL, its whole process group) while it takes in a page:
    the page and its cursor were stored first, some of it taken in. The next worker takes
    in the rest of that page, then reads on: every message answered, none twice."""
    wait_until(kf.read_to_end, SYNC_S, "earlier tests' messages read")
    kf.sim.page_size = 4
    a, victim, b = _customer(), _customer(), _customer()
    asked = {
        kf.sim.customer_sends(a, QUESTIONS[0]): a,
        kf.sim.customer_sends(a, QUESTIONS[1]): a,
        kf.sim.customer_sends(victim, QUESTIONS[2]): victim,
        kf.sim.customer_sends(b, QUESTIONS[3]): b,
        kf.sim.customer_sends(b, QUESTIONS[4]): b,  # the next page
        kf.sim.customer_sends(victim, QUESTIONS[5]): victim,
    }
    ids = list(asked)
    kf.gate.arm(victim)  # the sync's read of the victim's session: held
    try:
        notes = kf.notify()
        assert kf.gate.arrived.wait(SYNC_S), "the sync never reached the third message"
        kf.processes.stop("kf-sync", signal.SIGKILL)
    finally:
        kf.gate.release()
    [cursor] = kf.rows("SELECT pending FROM kf_cursors")
    pending = [m["msgid"] for m in json.loads(cursor.pending)]
    assert pending == ids[:4]  # the page, stored with its cursor before it was taken in
    assert [kf.status(m) != "" for m in ids] == [True, True, False, False, False, False]

    kf.start_sync_worker()  # takes the syncs still queued; and WeCom retries one:
    kf.deliver(notes[-1:])
    try:
        wait_until(lambda: kf.all_answered(ids), ANSWER_S, "every message answered")
        wait_until(kf.read_to_end, SYNC_S, "the account read to its end")
    finally:
        kf.sim.page_size = 1000
    for customer in (a, victim, b):
        assert len(kf.sent_to(customer)) == kf.replies_sent(customer) >= 2
    assert "taking in 4 message(s) a reader before stored" in kf.processes.log("kf-sync")
