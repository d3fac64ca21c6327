"""The WeCom (企业微信) channel on the production path: encrypted callbacks into gunicorn,
answers by a prefork Celery worker (3 processes) on Redis, PostgreSQL, milvus-lite, the
real model; WeCom played by its simulator (gettoken, message/send).

What is proven: the encrypted URL check; three deliveries of one MsgId give one answer
through message/send; `flask wecom simulate` prints that answer; hostile input is a 4xx
that stores and queues nothing; three processes share one gettoken, also when the token
expires under all three at once; a member over the rate limit is told so once (counted
in Redis); under a flood new questions are turned away politely and every accepted one
is still answered once.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import redis
import requests
import sqlalchemy as sa
from click.testing import CliRunner

from app.channels.wecom.api import token_key
from app.messages.voice import VOICE_NOT_NOW
from app.settings import Settings
from app.simulator.server import serve_in_thread
from app.simulator.wecom import GETTOKEN, SEND, WeComAPISimulator, create_wecom_simulator_app
from app.simulator.wecom_callback import WeComCallbackClient
from app.simulator.wecom_cli import wecom as wecom_cli
from app.speech.errors import VOICE_NO_SPEECH, VOICE_UNREADABLE
from tests.conftest import temp_pg_database
from tests.support import (
    BIN,
    TEST_MODEL,
    Processes,
    base_env,
    broker_url,
    free_port,
    start_service,
    wait_until,
)

pytestmark = pytest.mark.slow

CORP, AGENT, SECRET = "ww0e2e0123456789ab", "1000002", "wecom-e2e-secret"
TOKEN, AES = "wecomE2Etoken", "WeComE2EaesKey0123456789abcdefghijklmnopqrs"
WORKERS = 3
RATE_LIMIT = 3  # questions per member per hour, for this service
FLOOD_BACKLOG = 4  # unanswered questions of all members, for this service
ANSWER_S = 240  # the first answers load the model in three processes on a small machine
FAQ = "我的订单还没发货"  # answered with the stored FAQ answer (付款后48小时内发货)
OPEN_QUESTION = "我上周付的款，大概还要等几天才会发出来呀？"  # no FAQ's own: the model answers
DEFAULTS = Settings.model_fields
VOICE = Path(__file__).parents[1] / "fixtures" / "voice"


@dataclass
class SendGate:
    """WSGI middleware in front of the simulator: holds message/send requests carrying one
    token until `parties` of them wait, so worker processes hit WeCom at the same moment."""

    app: Callable[..., Any]
    held_together: int = 0
    _hold: tuple[str, threading.Barrier] | None = field(default=None)

    def hold(self, token: str, parties: int) -> None:
        self.held_together = 0
        self._hold = (token, threading.Barrier(parties, timeout=ANSWER_S))

    def release(self) -> None:
        hold, self._hold = self._hold, None
        if hold is not None:
            hold[1].abort()

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        hold = self._hold
        if environ.get("PATH_INFO") == SEND and hold is not None:
            token = parse_qs(environ.get("QUERY_STRING", "")).get("access_token", [""])[0]
            if token == hold[0]:
                try:
                    hold[1].wait()
                    self.held_together = hold[1].parties
                except threading.BrokenBarrierError:
                    pass
        return self.app(environ, start_response)


@dataclass
class WeComService:
    url: str
    sim_url: str
    sim: WeComAPISimulator
    gate: SendGate
    db: sa.Engine
    broker: str
    warmup_token_requests: dict[str, int]
    instant_url: str = ""  # a web process that answers FAQ questions itself

    def client(self, token: str = TOKEN, corp: str = CORP) -> WeComCallbackClient:
        return WeComCallbackClient(self.url + "/wecom", token, corp, AES, AGENT)

    def ask(self, member: str, question: str = FAQ) -> tuple[str, dict | None]:
        """A member's text as WeCom posts it; returns its MsgId and the passive reply."""
        client = self.client()
        xml = client.text(member, question)
        resp = client.post(xml)
        assert resp.status_code == 200, resp.text
        return xml.split("<MsgId>")[1].split("</MsgId>")[0], client.decrypt_reply(resp.text)

    def rows(self, sql: str, **params: object) -> list[Any]:
        with self.db.connect() as conn:
            return list(conn.execute(sa.text(sql), params))

    def status(self, msg_id: str) -> str:
        rows = self.rows("SELECT status FROM inbound_messages WHERE dedup_key=:k", k=msg_id)
        return rows[0].status if rows else ""

    def delivered(self, member: str) -> list[dict]:
        return [m for m in self.sim.sent if m["touser"] == member]

    def current_token(self) -> str:
        key = token_key(CORP, AGENT)
        return self.rows("SELECT token FROM access_tokens WHERE app_id=:a", a=key)[0].token

    def work(self) -> tuple[int, int]:
        """Stored messages and queued tasks: hostile input must change neither."""
        stored = self.rows("SELECT count(*) AS n FROM inbound_messages")[0].n
        return stored, redis.Redis.from_url(self.broker).llen("llm")


def _member() -> str:
    return f"m_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def wecom(
    tmp_path_factory: pytest.TempPathFactory, processes: Processes, milvus_uri: str
) -> Iterator[WeComService]:
    assert TEST_MODEL.is_file(), "run `flask model pull qwen2.5-0.5b` (make test does)"
    sim = WeComAPISimulator(CORP, SECRET, AGENT, with_rid=True)
    sim_app = create_wecom_simulator_app(sim)
    gate = SendGate(sim_app.wsgi_app)
    sim_app.wsgi_app = gate  # type: ignore[method-assign]
    handle = serve_in_thread(sim_app)
    broker = broker_url("wecom")
    # A database of its own: the flood cap counts every unanswered question in it.
    with temp_pg_database() as database_url:
        env = base_env(
            tmp_path_factory.mktemp("wecom-data"),
            DATABASE_URL=database_url,
            CELERY_BROKER_URL=broker,
            MILVUS_URI=milvus_uri,
            MILVUS_COLLECTION="kb_wecom_e2e",
            WECOM_TOKEN=TOKEN,
            WECOM_AES_KEY=AES,
            WECOM_CORP_ID=CORP,
            WECOM_AGENT_ID=AGENT,
            WECOM_SECRET=SECRET,
            WECOM_API_BASE_URL=handle.url,
            WECHAT_HTTP_TIMEOUT_S="200",  # sends held by the gate wait for the slowest answer
            RATE_LIMIT_MESSAGES=str(RATE_LIMIT),
            RATE_LIMIT_WINDOW_S="3600",
            FLOOD_MAX_BACKLOG=str(FLOOD_BACKLOG),
            LLM_MAX_TOKENS="48",
            LLM_N_THREADS="1",
            OMP_NUM_THREADS="1",
            # These tests follow questions through the workers; FAQ questions answered in
            # the web tier at once are the instant web process's (test below).
            WECHAT_INSTANT_FAQ="false",
        )
        url = start_service(processes, env, "wecom", web_workers=1, concurrency=WORKERS)
        instant_port = free_port()
        processes.start(
            "wecom-instant",
            [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{instant_port}", "--workers", "1"]
            + ["--worker-class", "gthread", "--threads", "4", "app.wsgi:app"],
            {**env, "WECHAT_INSTANT_FAQ": "true"},
        )
        engine = sa.create_engine(database_url)
        service = WeComService(url, handle.url, sim, gate, engine, broker, {})
        service.instant_url = f"http://127.0.0.1:{instant_port}"
        try:
            # One question per worker process at once: each loads its model now, and the
            # first token is fetched by one of them only.
            members = [_member() for _ in range(WORKERS)]
            for member in members:
                service.ask(member)
            wait_until(
                lambda: all(len(service.delivered(m)) == 1 for m in members),
                ANSWER_S,
                "warm-up answers",
            )
            service.warmup_token_requests = sim.token_requests
            yield service
        finally:
            gate.release()
            engine.dispose()
            processes.stop("wecom-web")
            processes.stop("wecom-instant")
            processes.stop("wecom-worker")
            handle.stop()


def test_first_token_is_fetched_once_by_three_processes(wecom: WeComService) -> None:
    assert wecom.warmup_token_requests == {GETTOKEN: 1}


def test_encrypted_url_check(wecom: WeComService) -> None:
    resp = wecom.client().verify_url("5927331067834409171")
    assert resp.status_code == 200 and resp.text == "5927331067834409171"
    assert wecom.client(token="wrongtoken1").verify_url("1").status_code == 403


def test_three_deliveries_of_one_msgid_are_answered_once_via_message_send(
    wecom: WeComService,
) -> None:
    client, member = wecom.client(), _member()
    xml = client.text(member, FAQ)
    for _ in range(3):  # WeCom's three tries of one MsgId, each acknowledged at once
        resp = client.post(xml)
        assert resp.status_code == 200 and resp.text == ""
    msg_id = xml.split("<MsgId>")[1].split("</MsgId>")[0]
    wait_until(lambda: wecom.status(msg_id) == "answered", ANSWER_S, "message answered")
    [sent] = wecom.delivered(member)
    assert "48" in sent["content"]  # the FAQ: 付款后48小时内发货
    assert sent["agentid"] == int(AGENT) and sent["msgtype"] == "text"
    rows = wecom.rows(
        "SELECT m.channel, r.status FROM inbound_messages m "
        "JOIN outbound_replies r ON r.inbound_id = m.id WHERE m.dedup_key=:k",
        k=msg_id,
    )
    assert [(r.channel, r.status) for r in rows] == [("wecom", "sent")]


def test_a_voice_message_is_heard_here_and_answered(wecom: WeComService) -> None:
    """WeCom never sends Recognition: the worker downloads the AMR (media/get) and
    transcribes it locally; the words are stored and answered through message/send."""
    media_id = f"V_{uuid.uuid4().hex[:10]}"
    wecom.sim.add_media(media_id, (VOICE / "zh_order.amr").read_bytes(), "audio/amr")
    client, member = wecom.client(), _member()
    xml = client.voice(member, media_id, None)
    resp = client.post(xml)
    assert resp.status_code == 200 and resp.text == ""
    msg_id = xml.split("<MsgId>")[1].split("</MsgId>")[0]
    wait_until(lambda: wecom.status(msg_id) == "answered", ANSWER_S, "voice answered")
    [row] = wecom.rows("SELECT content FROM inbound_messages WHERE dedup_key=:k", k=msg_id)
    assert "订单" in row.content, row.content
    [sent] = wecom.delivered(member)
    assert sent["content"] not in (VOICE_UNREADABLE, VOICE_NO_SPEECH, VOICE_NOT_NOW)


def test_cli_simulate_prints_the_answer_sent_through_message_send(wecom: WeComService) -> None:
    member = _member()
    args = ["simulate", "--url", wecom.url + "/wecom", "--token", TOKEN, "--corp-id", CORP]
    args += ["--aes-key", AES, "--agent-id", AGENT, "--from-user", member]
    args += ["--simulator-url", wecom.sim_url, "--timeout", str(ANSWER_S), "满多少包邮？"]
    result = CliRunner().invoke(wecom_cli, args)
    assert result.exit_code == 0, result.output
    assert "99" in result.output  # the FAQ: 满99元包邮
    assert [m["content"] for m in wecom.delivered(member)] == [result.output.strip()]


def test_an_faq_question_is_answered_at_once_as_the_encrypted_passive_reply(
    wecom: WeComService, processes: Processes
) -> None:
    wait_until(lambda: "FAQ table ready" in processes.log("wecom-instant"), 120, "the FAQ table")
    client = WeComCallbackClient(wecom.instant_url + "/wecom", TOKEN, CORP, AES, AGENT)
    member = _member()
    xml = client.text(member, "开发票怎么弄")  # no listed paraphrase: matched by meaning
    first = client.decrypt_reply(client.post(xml).text)
    assert first is not None and "电子普通发票" in first["Content"], first
    again = client.decrypt_reply(client.post(xml).text)  # WeCom's retry: the same reply
    assert again is not None and again["Content"] == first["Content"]
    msg_id = xml.split("<MsgId>")[1].split("</MsgId>")[0]
    [row] = wecom.rows(
        "SELECT status, outcome, outcome_detail FROM inbound_messages WHERE dedup_key=:k",
        k=msg_id,
    )
    assert (row.status, row.outcome) == ("answered", "faq")
    assert json.loads(row.outcome_detail)["via"] == "meaning"
    assert wecom.delivered(member) == []  # nothing through message/send


def test_hostile_input_is_4xx_and_creates_no_work(wecom: WeComService) -> None:
    before = wecom.work()
    xxe = '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Content>&e;</Content></xml>'
    signed = wecom.client()
    cases = [
        (wecom.client(token="wrongtoken1").post(signed.text("m_x", "hi")), 403),
        (wecom.client(corp="wwOTHERCORP0000000").post(signed.text("m_x", "hi")), 400),
        (signed.post(xxe), 400),
        (requests.post(wecom.url + "/wecom", params=signed.prepare(xxe).params, data=xxe), 400),
    ]
    for resp, status in cases:
        assert resp.status_code == status, resp.text
        assert resp.json()["error"]
    assert wecom.work() == before


def test_expired_token_storm_across_three_processes_costs_one_gettoken(
    wecom: WeComService,
) -> None:
    token = wecom.current_token()
    wecom.sim.expire_all_tokens()  # every send with it now answers 42001
    before = wecom.sim.token_requests
    wecom.gate.hold(token, WORKERS)
    try:
        members = [_member() for _ in range(WORKERS)]
        msg_ids = [wecom.ask(m)[0] for m in members]
        for msg_id in msg_ids:
            wait_until(lambda m=msg_id: wecom.status(m) == "answered", ANSWER_S, "answered")
    finally:
        wecom.gate.release()
    assert wecom.gate.held_together == WORKERS  # all three were refused at the same moment
    assert all(len(wecom.delivered(m)) == 1 for m in members)
    assert wecom.sim.token_requests[GETTOKEN] - before[GETTOKEN] == 1
    assert wecom.current_token() != token


def test_member_over_the_rate_limit_is_told_once(wecom: WeComService) -> None:
    member = _member()
    replies = [wecom.ask(member, FAQ) for _ in range(RATE_LIMIT + 2)]
    passive = [reply["Content"] if reply else "" for _, reply in replies]
    assert passive[:RATE_LIMIT] == [""] * RATE_LIMIT
    assert passive[RATE_LIMIT] == DEFAULTS["rate_limit_reply"].default
    assert passive[RATE_LIMIT + 1] == ""  # told once per window, not at every message
    admitted = [msg_id for msg_id, _ in replies[:RATE_LIMIT]]
    wait_until(lambda: all(wecom.status(m) == "answered" for m in admitted), ANSWER_S, "answers")
    assert [wecom.status(msg_id) for msg_id, _ in replies[RATE_LIMIT:]] == ["ignored"] * 2
    assert len(wecom.delivered(member)) == RATE_LIMIT  # the polite reply was passive
    keys = redis.Redis.from_url(wecom.broker).keys(f"wxcs:rate:wecom:{member}:*")
    assert len(keys) == 1  # counted in Redis, the deployment's broker


def test_flood_turns_new_questions_away_and_answers_every_accepted_one(
    wecom: WeComService,
) -> None:
    members = [_member() for _ in range(FLOOD_BACKLOG + 2)]
    # Questions for the model: none can be answered while the next few are posted.
    asked = [wecom.ask(m, OPEN_QUESTION) for m in members]
    refused = [m for m, (_, reply) in zip(members, asked, strict=True) if reply]
    accepted = [msg_id for msg_id, reply in asked if not reply]
    assert len(accepted) == FLOOD_BACKLOG and len(refused) == 2
    flood_reply = DEFAULTS["flood_reply"].default
    assert [reply["Content"] for _, reply in asked if reply] == [flood_reply] * 2
    wait_until(lambda: all(wecom.status(m) == "answered" for m in accepted), ANSWER_S, "answers")
    assert all(len(wecom.delivered(m)) == 1 for m in members if m not in refused)
    assert all(wecom.delivered(m) == [] for m in refused)
    for member in refused:
        [row] = wecom.rows("SELECT status, error FROM inbound_messages WHERE customer=:m", m=member)
        assert (row.status, row.error.split(":")[0]) == ("ignored", "busy")
