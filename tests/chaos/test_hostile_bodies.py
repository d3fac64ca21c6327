"""Hostile bodies for both callbacks (/wechat and /wecom): never a 5xx, never a traceback or
SQL in a body, never a forged request accepted, and never a row stored that a real
message could not have given.

Hypothesis generates the bodies (deterministically: the same run every time): malformed
and truncated XML, missing and wrong signatures, valid signatures over junk, huge fields,
wrong and lying encodings, XML bombs and XXE, NULs and other characters XML or PostgreSQL
refuse, deeply nested elements, every message type (and invented ones) with random
fields, truncated and bit-flipped ciphertexts, valid AES for another AppId or CorpID or
under another key, WeCom messages for another agent. Whatever must get past a signature
to reach the code under test is signed correctly, as WeChat or WeCom would sign it.

The real app (Flask's test client) on PostgreSQL, which enforces column lengths and
refuses NULs. HOSTILE_BODIES sets how many (default 1,000, the CI form; the bench runs
more), HOSTILE_SEED which run.
"""

from __future__ import annotations

import base64
import os
import random
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from xml.sax.saxutils import escape

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from wechatpy.crypto import WeChatCrypto
from wechatpy.work.crypto import WeChatCrypto as WorkCrypto

from app import create_app
from app.channels.wechat.security import sign
from app.extensions import db
from app.settings import load_settings
from app.simulator.messages import cdata
from app.store import InboundMessage
from tests.conftest import temp_pg_database
from tests.support import free_port

BODIES = int(os.environ.get("HOSTILE_BODIES", "1000"))
SEED = int(os.environ.get("HOSTILE_SEED", "21"))

MP = {"token": "hostiletoken1", "app_id": "wx1122334455667788", "aes": "A" * 42 + "E"}
WORK = {"token": "hostiletoken2", "corp": "ww8877665544332211", "agent": "1000002"}
WORK["aes"] = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
OTHER_AES = "ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkj"
MAX_BODY = 65536

#: What a stored row must look like, as a real WeChat or WeCom message gives it.
IDENTIFIER = re.compile(r"[A-Za-z0-9_\-@.]+")
MESSAGE_TYPES = {"text", "image", "voice", "video", "shortvideo", "location", "link", "file"}
MESSAGE_TYPES.add("other")  # a type the platforms do not send (answered as unsupported)
EVENT_TYPE = re.compile(r"event:[a-z0-9_]+")
STATUSES = {"received", "processing", "answered", "failed", "ignored", "ready", "handoff"}
#: What no response body may quote.
LEAK = re.compile(
    r"Traceback|File \"|sqlalchemy|psycopg|\bSELECT\b|\bINSERT\b|\bUPDATE\b|Exception|"
    r"Error:|at 0x[0-9a-f]+|/app/|\.py\b",
)


def _column(name: str) -> int:
    return InboundMessage.__table__.c[name].type.length


def invalid_row(row: InboundMessage) -> str | None:
    """Why ``row`` is not one a real message could have stored, or None."""
    checks = {
        "channel": row.channel in ("wechat", "wecom"),
        "customer": bool(IDENTIFIER.fullmatch(row.customer))
        and len(row.customer) <= _column("customer"),
        "account": bool(IDENTIFIER.fullmatch(row.account))
        and len(row.account) <= _column("account"),
        "msg_type": (row.msg_type in MESSAGE_TYPES or bool(EVENT_TYPE.fullmatch(row.msg_type)))
        and len(row.msg_type) <= _column("msg_type"),
        "dedup_key": 0 < len(row.dedup_key) <= _column("dedup_key"),
        "status": row.status in STATUSES,
        "media_id": len(row.media_id) <= _column("media_id")
        and (not row.media_id or row.msg_type == "image"),
        "content": "\x00" not in row.content,
    }
    bad = [name for name, ok in checks.items() if not ok]
    if not bad:
        return None
    shown = {name: getattr(row, name) for name in bad}
    return f"row {row.id}: {', '.join(bad)} {shown!r:.300}"


# --- the generator ----------------------------------------------------------------------


@dataclass
class Case:
    """One request: where, its query, its body, and whether it must be refused (forged,
    or for someone else) rather than accepted."""

    kind: str
    channel: str
    params: dict[str, str]
    body: bytes
    forged: bool = False


NASTY = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "&#0;",
    "&#xD800;",
    "]]>",
    "<![CDATA[",
    "<b>x</b>",
    "&amp;",
    "&lt;script&gt;",
    "' OR 1=1 --",
    "%s%s%n",
    "\u202eevil",
    "𠜎𠜎",
    "😀" * 50,
    "\x1b[31m",
    "\x01\x02",
    "\ufeff",
    "转人工",
    "人工",
    "-1",
    "9" * 40,
    "1e309",
    "null",
]
KNOWN_TYPES = ["text", "image", "voice", "video", "shortvideo", "location", "link", "event"]
KNOWN_EVENTS = ["subscribe", "unsubscribe", "SCAN", "LOCATION", "CLICK", "VIEW", "enter_agent"]
KNOWN_EVENTS += ["qualification_verify_success", "kf_create_session", "TEMPLATESENDJOBFINISH"]
FIELD_NAMES = ["Content", "MsgId", "MediaId", "PicUrl", "Format", "Recognition", "Event"]
FIELD_NAMES += ["EventKey", "Ticket", "Latitude", "Longitude", "Precision", "Location_X"]
FIELD_NAMES += ["Label", "Title", "Description", "Url", "ThumbMediaId", "AgentID", "Encrypt"]

values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(NASTY),
    st.integers().map(str),
    st.builds(
        lambda ch, n: ch * n,
        st.sampled_from(["x", "中", "😀", "<", "&"]),
        st.sampled_from([27, 28, 29, 64, 65, 127, 128, 129, 256, 257, 1000, 8000, 40000]),
    ),
)
ids = st.one_of(
    st.from_regex(r"o[A-Za-z0-9_-]{27}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_\-@.]{0,20}", fullmatch=True),
    values,
)


#: Characters XML 1.0 does not allow, which no platform sends.
XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
clean_values = values.map(lambda v: XML_INVALID.sub("", v))
clean_ids = ids.map(lambda v: XML_INVALID.sub("", v))


def _element(tag: str, value: str, style: str) -> str:
    if style == "cdata":
        return f"<{tag}>{cdata(value)}</{tag}>"
    if style == "escaped":
        return f"<{tag}>{escape(value)}</{tag}>"
    return f"<{tag}>{value}</{tag}>"  # raw: markup in the value stays markup


@st.composite
def message_xml(draw: st.DrawFn, honest: bool = False) -> str:
    """A message with the four header fields (unless not ``honest``: any of them missing,
    or marked up), a type (known or invented) and random other fields."""
    text, id_ = (clean_values, clean_ids) if honest else (values, ids)
    msg_type = draw(st.one_of(st.sampled_from(KNOWN_TYPES), text))
    fields: list[tuple[str, str]] = [
        ("ToUserName", draw(st.one_of(st.just("gh_account"), id_))),
        ("FromUserName", draw(id_)),
        ("CreateTime", draw(st.one_of(st.just(str(int(time.time()))), text))),
        ("MsgType", msg_type),
    ]
    if msg_type == "event":
        fields.append(("Event", draw(st.one_of(st.sampled_from(KNOWN_EVENTS), text))))
    if msg_type == "text":
        fields.append(("Content", draw(text)))
    extra = draw(st.lists(st.tuples(st.sampled_from(FIELD_NAMES), text), max_size=6))
    fields += extra
    fields = draw(st.permutations(fields))
    drop = set() if honest else draw(st.sets(st.integers(0, len(fields) - 1), max_size=2))
    style = st.sampled_from(["cdata", "cdata", "escaped"] + ([] if honest else ["raw"]))
    inner = "".join(_element(t, v, draw(style)) for i, (t, v) in enumerate(fields) if i not in drop)
    return f"<xml>{inner}</xml>"


BOMBS = [
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
    '"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 '
    '"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><xml><Content>&lol3;</Content></xml>',
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    "<xml><ToUserName>a</ToUserName><FromUserName>&xxe;</FromUserName>"
    "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&xxe;</Content></xml>",
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:1/x.dtd">%p;]><xml/>',
    "<!DOCTYPE xml [<!ELEMENT xml ANY>]><xml><Content>x</Content></xml>",
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "&#38;#60;">]><xml>&a;</xml>',
    '<xml xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="file:///etc/passwd"/></xml>',
    "<?xml-stylesheet href='http://127.0.0.1:1/x.xsl'?><xml/>",
]


@st.composite
def junk_xml(draw: st.DrawFn) -> str:
    """XML that is broken, hostile or merely strange."""
    kind = draw(
        st.sampled_from(["bomb", "deep", "truncated", "text", "root", "nul", "many", "wide"])
    )
    if kind == "bomb":
        return draw(st.sampled_from(BOMBS))
    if kind == "deep":
        depth = draw(st.sampled_from([50, 1000, 20000]))
        return "<xml>" + "<a>" * depth + "x" + "</a>" * depth + "</xml>"
    if kind == "truncated":
        whole = draw(message_xml())
        return whole[: draw(st.integers(0, max(len(whole) - 1, 0)))]
    if kind == "text":
        return draw(st.text(max_size=300))
    if kind == "root":
        return draw(message_xml()).replace("xml>", draw(st.sampled_from(["XML>", "root>", "x>"])))
    if kind == "nul":
        whole = draw(message_xml())
        at = draw(st.integers(0, len(whole)))
        return whole[:at] + draw(st.sampled_from(["\x00", "\x01", "\ufffe", "\ud800"])) + whole[at:]
    if kind == "many":
        return "<xml>" + "<Content>x</Content>" * draw(st.sampled_from([2, 500, 3000])) + "</xml>"
    return "<xml " + " ".join(f'a{i}="{i}"' for i in range(draw(st.integers(1, 3000)))) + "/>"


@st.composite
def encoded(draw: st.DrawFn, text: str, honest: bool) -> bytes:
    """``text`` as bytes: as it says (UTF-8, UTF-16 with a BOM, declared GBK), or not."""
    lies = [] if honest else ["latin-1 lie", "unknown", "bad bytes"]
    how = draw(st.sampled_from(["utf-8"] * 6 + ["utf-16", "gbk"] + lies))
    if how == "utf-8":
        return text.encode("utf-8", "surrogatepass")
    if how == "utf-16":
        return text.encode("utf-16", "surrogatepass")
    if how == "latin-1 lie":  # declares ISO-8859-1, carries UTF-8
        return b'<?xml version="1.0" encoding="ISO-8859-1"?>' + text.encode("utf-8", "replace")
    if how == "gbk":
        head = '<?xml version="1.0" encoding="GBK"?>'
        return (head + text).encode("gbk", "replace")
    if how == "unknown":
        name = draw(st.sampled_from(["unicode_escape", "rot13", "x-nope", "utf-7", "hex"]))
        return f'<?xml version="1.0" encoding="{name}"?>'.encode() + text.encode("utf-8", "replace")
    data = text.encode("utf-8", "surrogatepass")
    at = draw(st.integers(0, len(data)))
    return (
        data[:at]
        + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"]))
        + data[at:]
    )


def _nonce(draw: st.DrawFn) -> str:
    return str(draw(st.integers(10**8, 2**31)))


def _signed_query(
    draw: st.DrawFn, honest: bool, token: str, *parts: str
) -> tuple[dict[str, str], bool]:
    """(timestamp, nonce and the signature over them), honest or tampered; True if
    tampered (the request must then be refused)."""
    ts, nonce = str(int(time.time())), _nonce(draw)
    tampered = ["wrong", "missing", "stale", "junk ts", "other"]
    how = "ok" if honest else draw(st.sampled_from(["ok"] * 3 + tampered))
    signature = sign(token, ts, nonce, *parts)
    if how == "wrong":
        signature = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    elif how == "missing":
        signature = ""
    elif how == "stale":
        ts = str(int(time.time()) - 3600)
        signature = sign(token, ts, nonce, *parts)
    elif how == "junk ts":
        ts = draw(st.sampled_from(["", "abc", "1e9", "-", "\u0661\u0662", "9" * 30]))
        signature = sign(token, ts, nonce, *parts)
    elif how == "other":  # signed with another token
        signature = sign("not-the-token", ts, nonce, *parts)
    return {"timestamp": ts, "nonce": nonce, "signature": signature}, how != "ok"


def _seal(crypto: WeChatCrypto | WorkCrypto, plain: str, nonce: str, ts: str) -> str:
    """The Encrypt of ``plain`` (as UTF-8 bytes, lone surrogates too). wechatpy draws its
    16-byte prefix from ``random``: its state is put back, so a run stays deterministic."""
    state = random.getstate()
    try:
        sealed = crypto.encrypt_message(plain.encode("utf-8", "surrogatepass"), nonce, ts)
    finally:
        random.setstate(state)
    return re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>", sealed, re.S).group(1)


@st.composite
def ciphertext(draw: st.DrawFn, channel: str, plain: str, honest: bool) -> tuple[str, bool]:
    """(Encrypt, whether it must be refused): ours, or for another AppId/CorpID, under
    another key, truncated, bit-flipped or not base64 at all."""
    ts, nonce = str(int(time.time())), _nonce(draw)
    ours = MP["app_id"] if channel == "wechat" else WORK["corp"]
    aes = MP["aes"] if channel == "wechat" else WORK["aes"]
    token = MP["token"] if channel == "wechat" else WORK["token"]
    crypto_cls = WeChatCrypto if channel == "wechat" else WorkCrypto
    tampered = ["other id", "other key", "truncated", "flipped", "junk"]
    how = "ok" if honest else draw(st.sampled_from(["ok"] * 3 + tampered))
    receiver = "wxdeadbeefdeadbeef" if how == "other id" else ours
    key = OTHER_AES if how == "other key" else aes
    encrypt = _seal(crypto_cls(token, key, receiver), plain, nonce, ts)
    if how == "truncated":
        encrypt = encrypt[: draw(st.integers(0, len(encrypt) - 1))]
    elif how == "flipped":
        raw = bytearray(base64.b64decode(encrypt))
        at = draw(st.integers(0, len(raw) - 1))
        raw[at] ^= 1 << draw(st.integers(0, 7))
        encrypt = base64.b64encode(bytes(raw)).decode()
    elif how == "junk":
        encrypt = draw(st.one_of(st.text(max_size=80), st.sampled_from(["====", "AAAA", "\x00"])))
    # A flipped bit in the random prefix still decrypts to the same message: not forged.
    return encrypt, how not in ("ok", "flipped")


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """Half honest (signed, encrypted and encoded as the platform would, with random
    fields: they reach the store), half hostile at any layer."""
    channel = draw(st.sampled_from(["wechat", "wecom"]))
    honest = draw(st.booleans())
    inner = draw(message_xml(honest) if honest else st.one_of(message_xml(), junk_xml()))
    if channel == "wechat":
        mode = draw(st.sampled_from(["plain", "plain", "aes"]))
        params, forged = _signed_query(draw, honest, MP["token"])
        if mode == "plain":
            body = draw(encoded(inner, honest))
            return Case("wechat plain", channel, params, body, forged)
        encrypt, refused = draw(ciphertext(channel, inner, honest))
        signature = sign(MP["token"], params["timestamp"], params["nonce"], encrypt)
        wrong = ["", signature[::-1], "0" * 40]
        msg_signature = signature if honest else draw(st.sampled_from([signature] * 3 + wrong))
        types = ["aes"] if honest else ["aes"] * 3 + ["AES", "raw", "des", ""]
        params.update(encrypt_type=draw(st.sampled_from(types)), msg_signature=msg_signature)
        envelope = f"<xml><ToUserName>gh_account</ToUserName><Encrypt>{encrypt}</Encrypt></xml>"
        body = draw(encoded(envelope, honest))
        aes = params["encrypt_type"].lower() == "aes"
        refused = aes and (msg_signature != signature or refused)
        return Case("wechat aes", channel, params, body, forged or refused)
    # WeCom: always encrypted, the AgentID in the envelope and (maybe) in the message.
    agent = WORK["agent"] if honest else draw(st.one_of(st.just(WORK["agent"]), values))
    misdirected = False
    if "</xml>" in inner and draw(st.booleans()):
        inner = inner.replace("</xml>", f"<AgentID>{escape(agent)}</AgentID></xml>")
        misdirected = agent.strip() not in ("", WORK["agent"])
    encrypt, refused = draw(ciphertext(channel, inner, honest))
    params, forged = _signed_query(draw, honest, WORK["token"], encrypt)
    params["msg_signature"] = params.pop("signature")
    envelope = (
        f"<xml><ToUserName>{WORK['corp']}</ToUserName><AgentID>{escape(agent)}</AgentID>"
        f"<Encrypt>{encrypt}</Encrypt></xml>"
    )
    body = draw(encoded(envelope, honest))
    return Case("wecom", channel, params, body, forged or refused or misdirected)


# --- the run ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    with temp_pg_database() as url:
        app = create_app(
            load_settings(
                data_dir=tmp_path_factory.mktemp("hostile"),
                database_url=url,
                milvus_uri=f"http://127.0.0.1:{free_port()}",
                wechat_token=MP["token"],
                wechat_app_id=MP["app_id"],
                wechat_app_secret="hostilesecret",
                wechat_aes_key=MP["aes"],
                wecom_token=WORK["token"],
                wecom_aes_key=WORK["aes"],
                wecom_corp_id=WORK["corp"],
                wecom_agent_id=WORK["agent"],
                wecom_secret="hostilesecret",
                wechat_instant_faq=False,
                wechat_max_body_bytes=MAX_BODY,
            )
        )
        with app.app_context():
            db.create_all()
        yield app
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.mark.slow  # a thousand generated bodies, about 25 s: the full suite's
def test_hostile_bodies_get_no_5xx_and_store_nothing_invalid(
    app: Flask, capsys: pytest.CaptureFixture[str]
) -> None:
    client = app.test_client()
    statuses: Counter[int] = Counter()
    channels: Counter[str] = Counter()
    failures: list[str] = []

    @seed(SEED)
    @settings(
        max_examples=BODIES,
        database=None,
        deadline=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        phases=["generate"],  # no shrinking: failures are collected, reported below
    )
    @given(cases())
    def send(case: Case) -> None:
        resp = client.post(f"/{case.channel}", query_string=case.params, data=case.body)
        statuses[resp.status_code] += 1
        channels[case.channel] += 1
        text = resp.get_data(as_text=True)
        where = f"{case.kind} {case.params} {case.body[:160]!r}"
        if resp.status_code >= 500:
            failures.append(f"{resp.status_code} for {where}: {text[:300]}")
        elif LEAK.search(text):
            failures.append(f"{resp.status_code} quotes internals for {where}: {text[:300]}")
        elif case.forged and resp.status_code < 400:
            failures.append(f"{resp.status_code}: a forged or misdirected request accepted {where}")

    started = time.monotonic()
    send()
    took = time.monotonic() - started

    with app.app_context():
        rows = list(db.session.scalars(db.select(InboundMessage)))
        invalid = [problem for row in rows if (problem := invalid_row(row)) is not None]
        db.session.rollback()
    with capsys.disabled():
        print(
            f"\nhostile bodies: sent {sum(statuses.values())} "
            f"({', '.join(f'{c} {n}' for c, n in sorted(channels.items()))}) in {took:.1f} s; "
            f"by status {dict(sorted(statuses.items()))}; stored rows {len(rows)}, "
            f"invalid {len(invalid)}; failures {len(failures)}"
        )
    assert sum(statuses.values()) >= BODIES
    assert not failures, "\n".join(failures[:20])
    assert not invalid, "\n".join(invalid[:20])
    # The run reached the store, not only the gates in front of it.
    assert statuses[200] >= BODIES // 20 and len(rows) >= BODIES // 40, (statuses, len(rows))


def test_the_row_check_tells_a_real_message_from_junk() -> None:
    """The validation itself: a row a real message gives passes, a junk one does not."""
    real = {"id": 1, "channel": "wechat", "dedup_key": "1", "account": "gh_a", "content": ""}
    real.update(customer="o" * 28, msg_type="event:subscribe", status="answered", media_id="")
    assert invalid_row(InboundMessage(**real)) is None
    junk = invalid_row(InboundMessage(**{**real, "customer": "<b>x</b>", "msg_type": "who"}))
    assert junk is not None and "customer" in junk and "msg_type" in junk
