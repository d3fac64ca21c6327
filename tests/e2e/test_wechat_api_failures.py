"""Outbound WeChat API failures on the production path: signed callbacks into gunicorn,
answers by a prefork Celery worker (4 processes) on Redis, PostgreSQL, milvus-lite, the
real model; WeChat played by a simulator of this module's own.

What is proven: a busy (-1) send retried once delivers once; permanent errors (45015,
45047, 48001) end the message `failed` with the errcode on the reply, after one send
and with no Celery retry; -1, 5xx and token errors beyond WECHAT_SEND_RETRIES come back
through a Celery countdown and deliver once; a storm of token errors from four worker
processes at the same moment costs one token refresh.
"""

from __future__ import annotations

import ast
import io
import json
import re
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest
import sqlalchemy as sa

from app.simulator.api import create_simulator_app
from app.simulator.callback_client import CallbackClient
from app.simulator.server import serve_in_thread
from app.simulator.state import WeChatAPISimulator
from tests.support import (
    ROOT,
    TEST_MODEL,
    WECHAT,
    Processes,
    base_env,
    broker_url,
    start_service,
    wait_until,
)

pytestmark = pytest.mark.slow

#: An account of its own: the session's database keeps one token row per app id, and
#: the spine test's service (another simulator) must not see or clobber this one's.
APP_ID = "wxfa11ed0123456789"
SECRET = "failures-secret"
SEND = "/cgi-bin/message/custom/send"
STABLE = "/cgi-bin/stable_token"
TOKEN = "/cgi-bin/token"
RETRIES = 2  # WECHAT_SEND_RETRIES for this service: 3 tries per task run
WORKERS = 4  # prefork processes of the one Celery worker
ANSWER_S = 600  # first answers load the model in four processes on a small, shared machine


class SkewClock:
    """The simulator's clock: real time plus an offset tests move forward (never back)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class SendRecord:
    touser: str
    token: str
    at: float  # monotonic


@dataclass
class Wire:
    """WSGI middleware in front of the simulator: records who each send was for (the
    simulator's own `calls` do not say) and the force_refresh flag of each stable_token
    request, and can hold sends carrying one token until `parties` of them are waiting,
    so that worker processes hit WeChat at the same moment."""

    app: Callable[..., Any]
    sends: list[SendRecord] = field(default_factory=list)
    stable_forces: list[bool] = field(default_factory=list)
    held_together: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _hold: tuple[str, threading.Barrier] | None = None
    _stable_gate: threading.Event | None = None

    def hold_stable_token(self) -> threading.Event:
        """stable_token requests wait until the returned event is set."""
        gate = self._stable_gate = threading.Event()
        return gate

    def hold(self, token: str, parties: int, timeout: float = ANSWER_S) -> None:
        self.held_together = 0
        self._hold = (token, threading.Barrier(parties, timeout=timeout))

    def release(self) -> None:
        hold, self._hold = self._hold, None
        if hold is not None:
            hold[1].abort()
        gate, self._stable_gate = self._stable_gate, None
        if gate is not None:
            gate.set()

    def sends_to(self, openid: str) -> list[SendRecord]:
        with self._lock:
            return [s for s in self.sends if s.touser == openid]

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        path = environ.get("PATH_INFO", "")
        if path in (SEND, STABLE):
            size = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(size) if size else b""
            environ["wsgi.input"] = io.BytesIO(raw)
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = None
            body = body if isinstance(body, dict) else {}
            if path == STABLE:
                force = body.get("force_refresh") in (True, "true")
                with self._lock:
                    self.stable_forces.append(force)
                gate = self._stable_gate
                if gate is not None:
                    gate.wait(ANSWER_S)
            else:
                token = parse_qs(environ.get("QUERY_STRING", "")).get("access_token", [""])[0]
                with self._lock:
                    self.sends.append(SendRecord(str(body.get("touser")), token, time.monotonic()))
                hold = self._hold
                if hold is not None and token == hold[0]:
                    try:
                        hold[1].wait()
                        with self._lock:
                            self.held_together = hold[1].parties
                    except threading.BrokenBarrierError:
                        pass
        return self.app(environ, start_response)


@dataclass
class FailService:
    url: str
    env: dict[str, str]
    sim: WeChatAPISimulator
    clock: SkewClock
    wire: Wire
    db: sa.Engine
    processes: Processes
    warmup_token_requests: dict[str, int]

    def scalar(self, sql: str, **params: object) -> Any:
        with self.db.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def rows(self, sql: str, **params: object) -> list[Any]:
        with self.db.connect() as conn:
            return list(conn.execute(sa.text(sql), params))

    def worker_log(self) -> str:
        return self.processes.log("failures-worker")

    def current_token(self) -> str:
        return self.scalar("SELECT token FROM access_tokens WHERE app_id=:a", a=APP_ID)

    def ask(self, openid: str, question: str = "我上周付的款，大概还要等几天才会发出来呀？") -> str:
        """Posts a customer's text message as WeChat does; returns its MsgId. The question
        is no FAQ's own, so the answer comes from the model, not the stored FAQ answer."""
        client = CallbackClient(self.url + "/wechat", WECHAT["token"], APP_ID)
        xml = client.text(openid, question)
        resp = client.post(xml)
        assert resp.status_code == 200 and resp.text == "", resp.text
        return xml.split("<MsgId>")[1].split("</MsgId>")[0]

    def message(self, msg_id: str) -> Any:
        return self.rows(
            "SELECT id, status, attempts, error FROM inbound_messages WHERE dedup_key=:k",
            k=msg_id,
        )[0]

    def replies(self, msg_id: str) -> list[Any]:
        return self.rows(
            "SELECT r.id, r.status, r.errcode, r.errmsg, r.content FROM outbound_replies r "
            "JOIN inbound_messages m ON m.id = r.inbound_id WHERE m.dedup_key=:k ORDER BY r.seq",
            k=msg_id,
        )

    def wait_status(self, msg_id: str, status: str, timeout: float = ANSWER_S) -> Any:
        return wait_until(
            lambda: (row := self.message(msg_id)).status == status and row,
            timeout,
            f"message {msg_id} {status}",
        )

    def delivered(self, openid: str) -> list[dict]:
        return [m for m in self.sim.sent if m["touser"] == openid]


def _past_force_guard(svc: FailService) -> None:
    """31 s on, for stable_token's force_refresh guard and the service's own (it keeps
    forced refreshes 30 s apart across its processes: the token row says when)."""
    svc.clock.advance(31)
    with svc.db.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE access_tokens SET forced_at = forced_at - interval '31 seconds' "
                "WHERE app_id = :a"
            ),
            {"a": APP_ID},
        )


def _openid() -> str:
    return f"o_fail_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def svc(
    tmp_path_factory: pytest.TempPathFactory,
    processes: Processes,
    pg_url: str,
    milvus_uri: str,
) -> Iterator[FailService]:
    assert TEST_MODEL.is_file(), "run `flask model pull qwen2.5-0.5b` (make test does)"
    clock = SkewClock()
    sim = WeChatAPISimulator(APP_ID, SECRET, clock=clock, with_rid=True)
    sim_app = create_simulator_app(sim)
    wire = Wire(sim_app.wsgi_app)
    sim_app.wsgi_app = wire  # type: ignore[method-assign]
    handle = serve_in_thread(sim_app)

    broker = broker_url("failures")
    env = base_env(
        tmp_path_factory.mktemp("failures-data"),
        DATABASE_URL=pg_url,
        CELERY_BROKER_URL=broker,
        MILVUS_URI=milvus_uri,
        MILVUS_COLLECTION="kb_wechat_failures",
        WECHAT_TOKEN=WECHAT["token"],
        WECHAT_APP_ID=APP_ID,
        WECHAT_APP_SECRET=SECRET,
        WECHAT_API_BASE_URL=handle.url,
        WECHAT_SEND_RETRIES=str(RETRIES),
        # Sends held together by Wire wait for the slowest of four answers.
        WECHAT_HTTP_TIMEOUT_S="200",
        LLM_MAX_TOKENS="64",
        LLM_N_THREADS="1",
        OMP_NUM_THREADS="1",
    )
    url = start_service(processes, env, "failures", web_workers=1, concurrency=WORKERS)
    engine = sa.create_engine(pg_url)
    service = FailService(url, env, sim, clock, wire, engine, processes, {})
    try:
        # One message per worker process at once: every process loads its model now, and
        # the first token is fetched by one of them only.
        openids = [_openid() for _ in range(WORKERS)]
        for openid in openids:
            service.ask(openid)
        wait_until(
            lambda: all(len(service.delivered(o)) == 1 for o in openids),
            ANSWER_S,
            "warm-up answers",
        )
        service.warmup_token_requests = sim.token_requests
        yield service
    finally:
        wire.release()
        engine.dispose()
        processes.stop("failures-web")
        processes.stop("failures-worker")
        handle.stop()


# --- static -------------------------------------------------------------------------


def test_service_code_never_uses_wechatpys_client_or_auto_retry() -> None:
    """wechatpy's client re-fetches the token without bound on 40001 (auto_retry); ours is
    written on requests. Only wechatpy's parsing, replies and crypto may be imported."""
    offenders = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        if "auto_retry" in source and path.name != "api.py":
            offenders.append(f"{path}: mentions auto_retry")
        for node in ast.walk(ast.parse(source)):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.startswith("wechatpy") and re.search(
                    r"wechatpy\.(client|work\.client)|WeChatClient|WeChatComponent", name
                ):
                    offenders.append(f"{path.relative_to(ROOT)}: imports {name}")
    assert not offenders, offenders
    api = (ROOT / "app/channels/wechat/api.py").read_text(encoding="utf-8")
    assert "import requests" in api and "auto_retry=" not in api


# --- one message ----------------------------------------------------------------------


def test_first_token_is_fetched_once_by_four_processes(svc: FailService) -> None:
    assert svc.warmup_token_requests == {STABLE: 1}


def test_busy_once_then_delivered_exactly_once(svc: FailService) -> None:
    svc.sim.inject(SEND, -1, times=1)
    openid = _openid()
    msg_id = svc.ask(openid)

    row = svc.wait_status(msg_id, "answered")
    assert row.attempts == 1  # retried inside the task, no Celery retry
    sends = svc.wire.sends_to(openid)
    assert len(sends) == 2
    assert sends[1].at - sends[0].at >= 0.35  # backed off (0.4 s) before the retry
    assert len(svc.delivered(openid)) == 1
    assert [r.status for r in svc.replies(msg_id)] == ["sent"]
    assert svc.delivered(openid)[0]["content"] == svc.replies(msg_id)[0].content


@pytest.mark.parametrize(
    "faults",
    [[45015], [45047], [48001], [-1, 45015]],
    ids=["45015-window-passed", "45047-over-quota", "48001-unauthorised", "busy-then-45015"],
)
def test_permanent_errors_fail_once_without_loops(svc: FailService, faults: list[int]) -> None:
    code = faults[-1]
    for errcode in faults:
        svc.sim.inject(SEND, errcode, times=1)
    done_before = svc.worker_log().count("succeeded in")
    openid = _openid()
    msg_id = svc.ask(openid)

    row = svc.wait_status(msg_id, "failed")
    assert str(code) in row.error
    assert row.attempts == 1
    [reply] = svc.replies(msg_id)
    assert (reply.status, reply.errcode) == ("failed", code)
    assert reply.errmsg
    # The task ended with its result, not a Celery retry: nothing can send it again.
    wait_until(
        lambda: svc.worker_log().count("succeeded in") > done_before,
        30,
        "the task to finish",
    )
    log = svc.worker_log()
    assert re.search(rf"message {row.id} not deliverable: WeChat API error {code}", log)
    assert f"answer for message {row.id} failed" not in log
    assert len(svc.wire.sends_to(openid)) == len(faults)  # one per fault, no loop
    assert svc.delivered(openid) == []
    assert svc.message(msg_id).status == "failed"


@pytest.mark.parametrize(
    ("errcode", "http_status", "task_runs"),
    [(-1, 200, 2), (0, 502, 3), (40001, 200, 2)],
    ids=["busy", "http-502-twice-over", "token-invalid"],
)
def test_failures_beyond_the_budget_come_back_via_celery_and_deliver_once(
    svc: FailService, errcode: int, http_status: int, task_runs: int
) -> None:
    _past_force_guard(svc)
    tries = RETRIES + 1
    failing = tries * (task_runs - 1)  # every try of every run but the last fails
    svc.sim.inject(SEND, errcode, times=failing, http_status=http_status)
    tokens_before = svc.sim.token_requests
    openid = _openid()
    msg_id = svc.ask(openid)

    row = svc.wait_status(msg_id, "answered", ANSWER_S + 60)
    assert row.attempts == task_runs
    sends = svc.wire.sends_to(openid)
    assert len(sends) == failing + 1
    assert len(svc.delivered(openid)) == 1
    [reply] = svc.replies(msg_id)  # stored once, not regenerated by the retry
    assert reply.status == "sent" and svc.delivered(openid)[0]["content"] == reply.content

    log = svc.worker_log()
    for run in range(task_runs - 1):
        countdown = 5 * 2**run
        assert re.search(rf"answer for message {row.id} failed .*; retry in {countdown}s", log)
        gap = sends[(run + 1) * tries].at - sends[(run + 1) * tries - 1].at
        assert gap >= countdown - 0.5, (run, gap)  # the Celery countdown, not a hot loop
    token_requests = _delta(svc.sim.token_requests, tokens_before)
    if errcode == 40001:
        # Each rejected try refreshes once (a plain request, then a forced one when WeChat
        # keeps handing out the rejected token), all bounded by the retry budget.
        assert token_requests.get(STABLE, 0) <= 2 * RETRIES * (task_runs - 1)
        assert TOKEN not in token_requests
    else:
        gaps = [sends[i + 1].at - sends[i].at for i in range(tries - 1)]
        assert gaps[0] >= 0.35 and gaps[1] >= 0.75, gaps  # 0.4 s, 0.8 s back-off
        assert token_requests == {}


# --- storms: four worker processes at the same moment ---------------------------------


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def _storm(svc: FailService, prepare: Callable[[], None]) -> tuple[dict[str, int], list[bool]]:
    """Four messages answered by four processes whose sends (with the current token) reach
    WeChat together after `prepare`; returns the token requests and force flags it cost."""
    token = svc.current_token()
    prepare()
    tokens_before, forces_before = svc.sim.token_requests, len(svc.wire.stable_forces)
    svc.wire.hold(token, WORKERS)
    try:
        openids = [_openid() for _ in range(WORKERS)]
        msg_ids = [svc.ask(openid) for openid in openids]
        for msg_id in msg_ids:
            svc.wait_status(msg_id, "answered")
    finally:
        svc.wire.release()
    assert svc.wire.held_together == WORKERS  # all four failed at the same moment
    for openid in openids:
        assert len(svc.delivered(openid)) == 1
        assert len(svc.wire.sends_to(openid)) == 2  # the rejected one, then the good one
    return _delta(svc.sim.token_requests, tokens_before), svc.wire.stable_forces[forces_before:]


def test_expired_token_storm_costs_one_refresh(svc: FailService) -> None:
    old = svc.current_token()
    requests_made, forces = _storm(svc, svc.sim.expire_all_tokens)  # every token: 42001
    assert requests_made == {STABLE: 1}
    assert forces == [False]
    assert svc.current_token() != old
    assert sum(c["errcode"] == 42001 for c in svc.sim.calls) >= WORKERS


def test_40001_storm_for_a_token_wechat_still_hands_out_forces_one_refresh(
    svc: FailService,
) -> None:
    _past_force_guard(svc)
    old = svc.current_token()
    requests_made, forces = _storm(svc, lambda: svc.sim.inject(SEND, 40001, times=WORKERS))
    # stable_token without force hands back the rejected token, so one forced refresh.
    assert requests_made == {STABLE: 2}
    assert forces == [False, True]
    assert svc.current_token() != old


def test_a_40001_storm_that_goes_on_forces_at_most_one_refresh_per_30_s(
    svc: FailService,
) -> None:
    """WeChat keeps rejecting every token (40001) for two task runs of three messages: the
    first rejection forces one refresh, the rest wait for the retry instead of spending
    WeChat's 20 forced refreshes a day (27 in 17 s before)."""
    _past_force_guard(svc)
    forces_before = len(svc.wire.stable_forces)
    started = time.monotonic()
    svc.sim.inject(SEND, 40001, times=3 * (RETRIES + 1) * 2)
    openids = [_openid() for _ in range(3)]
    msg_ids = [svc.ask(openid) for openid in openids]
    for msg_id in msg_ids:
        svc.wait_status(msg_id, "answered", ANSWER_S)
    elapsed = time.monotonic() - started
    forces = svc.wire.stable_forces[forces_before:]
    print(  # the chaos report (pytest -s shows it)
        f"40001 storm: {3 * (RETRIES + 1) * 2} rejections over {elapsed:.0f} s, forced "
        f"refreshes {forces.count(True)}, sent 3, answered once "
        f"{sum(len(svc.delivered(o)) == 1 for o in openids)}"
    )
    assert 1 <= forces.count(True) <= 1 + int(elapsed // 30), (forces, elapsed)
    for openid in openids:
        assert len(svc.delivered(openid)) == 1


def test_superseded_token_storm_takes_the_current_stable_token_without_forcing(
    svc: FailService,
) -> None:
    """Someone else force-refreshed the stable token; five minutes later ours answers 40001
    ("not latest") and a plain stable_token request gives the current one."""
    ours = svc.current_token()
    svc.clock.advance(31)
    rogue = svc.sim.api_stable_token(  # straight to the simulator: not counted as ours
        {
            "grant_type": "client_credential",
            "appid": APP_ID,
            "secret": SECRET,
            "force_refresh": True,
        }
    )["access_token"]
    assert rogue != ours

    def after_grace() -> None:
        svc.clock.advance(301)
        assert svc.sim.check_token(ours)["errcode"] == 40001

    requests_made, forces = _storm(svc, after_grace)
    assert requests_made == {STABLE: 1}
    assert forces == [False]
    assert svc.current_token() == rogue


# --- the token holder against stable_token's rotation window ---------------------------


def test_refresh_before_expiry_follows_stable_tokens_window(svc: FailService) -> None:
    """Our row says "expiring" while four processes want the token. 1: WeChat does not
    rotate yet: stable_token hands back the same token with its true lifetime, stored
    without a forced refresh. 2: inside WeChat's last five minutes it hands out a new one.
    Each time one request for all four processes, the three others waiting on the lock."""
    token = svc.current_token()

    # 1. We think it expires in 100 s; WeChat knows it has about two hours left.
    _set_expiry(svc, 100)
    made, forces = _refresh_together(svc)
    assert made == {STABLE: 1}
    assert forces == [False]
    assert svc.current_token() == token
    left = svc.scalar(
        "SELECT extract(epoch FROM expires_at - now()) FROM access_tokens WHERE app_id=:a",
        a=APP_ID,
    )
    assert left > 3600, left  # its true lifetime: not fetched again on every send

    # 2. Both agree 200 s are left: inside WeChat's rotation window, a new token.
    svc.clock.advance(_issued_at_sim(svc, token) + svc.sim.token_ttl - 200 - svc.clock())
    _set_expiry(svc, 200)
    made, forces = _refresh_together(svc)
    assert made == {STABLE: 1}
    assert forces == [False]
    assert svc.current_token() != token
    assert svc.sim.check_token(token) is None  # the old one works out its time


def _set_expiry(svc: FailService, seconds: int) -> None:
    with svc.db.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE access_tokens SET expires_at = now() + make_interval(secs => :s) "
                "WHERE app_id=:a"
            ),
            {"s": seconds, "a": APP_ID},
        )


def _issued_at_sim(svc: FailService, token: str) -> float:
    """When the simulator issued `token`, on its clock (expires_in counts down from the
    TTL). Asked of the simulator directly, so neither counted nor seen by Wire."""
    again = svc.sim.api_stable_token(
        {"grant_type": "client_credential", "appid": APP_ID, "secret": SECRET}
    )
    assert again["access_token"] == token
    return svc.clock() + again["expires_in"] - svc.sim.token_ttl


def _advisory_waiters(svc: FailService) -> int:
    """Processes queued on the token lock (tokens.py: pg_advisory_lock(crc32(...)))."""
    key = zlib.crc32(f"wechat-token:{APP_ID}".encode())
    return svc.scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype='advisory' AND NOT granted "
        "AND database=(SELECT oid FROM pg_database WHERE datname=current_database()) "
        "AND classid=0 AND objid=:k",
        k=key,
    )


def _refresh_together(svc: FailService) -> tuple[dict[str, int], list[bool]]:
    """Four messages whose processes all want a token while the first stable_token
    request is held at WeChat: three processes queue on the lock meanwhile."""
    before, forces_before = svc.sim.token_requests, len(svc.wire.stable_forces)
    gate = svc.wire.hold_stable_token()
    try:
        openids = [_openid() for _ in range(WORKERS)]
        msg_ids = [svc.ask(openid) for openid in openids]
        wait_until(
            lambda: _advisory_waiters(svc) == WORKERS - 1,
            ANSWER_S,
            "three processes waiting for the token lock",
        )
        gate.set()
        for msg_id in msg_ids:
            svc.wait_status(msg_id, "answered")
    finally:
        svc.wire.release()
    for openid in openids:
        assert len(svc.delivered(openid)) == 1
    return _delta(svc.sim.token_requests, before), svc.wire.stable_forces[forces_before:]
