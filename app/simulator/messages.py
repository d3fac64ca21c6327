"""Message XML as WeChat pushes it to an Official Account's callback URL.

Shapes follow the samples in WeChat's docs (see shared/wechat/fixtures/mp): text
fields in CDATA, numbers bare, events without MsgId, voice with Recognition only
when recognition is switched on.
"""

from __future__ import annotations

import secrets
import time
import xml.etree.ElementTree as ET
from typing import Any

Field = tuple[str, "str | int | float", bool]  # tag, value, wrap in CDATA


def new_msg_id() -> str:
    """A random positive MsgId that fits a signed 64-bit column, as WeChat's do."""
    return str(secrets.randbelow(2**63 - 1) + 1)


def cdata(value: str) -> str:
    """CDATA that survives a literal ``]]>`` in user text."""
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def render(fields: list[Field]) -> str:
    parts = ["<xml>"]
    for tag, value, wrap in fields:
        text = cdata(str(value)) if wrap else str(value)
        parts.append(f"<{tag}>{text}</{tag}>")
    parts.append("</xml>")
    return "\n".join(parts)


def _head(to_user: str, from_user: str, msg_type: str, create_time: int | None) -> list[Field]:
    return [
        ("ToUserName", to_user, True),
        ("FromUserName", from_user, True),
        ("CreateTime", int(time.time()) if create_time is None else create_time, False),
        ("MsgType", msg_type, True),
    ]


def _msg_id(msg_id: str | int | None) -> Field:
    return ("MsgId", new_msg_id() if msg_id is None else msg_id, False)


def text(
    to_user: str,
    from_user: str,
    content: str,
    msg_id: str | int | None = None,
    create_time: int | None = None,
) -> str:
    return render(
        _head(to_user, from_user, "text", create_time)
        + [("Content", content, True), _msg_id(msg_id)]
    )


def image(
    to_user: str,
    from_user: str,
    pic_url: str,
    media_id: str,
    msg_id: str | int | None = None,
    create_time: int | None = None,
) -> str:
    return render(
        _head(to_user, from_user, "image", create_time)
        + [("PicUrl", pic_url, True), ("MediaId", media_id, True), _msg_id(msg_id)]
    )


def voice(
    to_user: str,
    from_user: str,
    media_id: str,
    recognition: str | None,
    msg_id: str | int | None = None,
    create_time: int | None = None,
    audio_format: str = "amr",
) -> str:
    fields = _head(to_user, from_user, "voice", create_time) + [
        ("MediaId", media_id, True),
        ("Format", audio_format, True),
    ]
    if recognition is not None:
        fields.append(("Recognition", recognition, True))
    return render(fields + [_msg_id(msg_id)])


def video(
    to_user: str,
    from_user: str,
    media_id: str,
    thumb_media_id: str,
    msg_id: str | int | None = None,
    create_time: int | None = None,
    short: bool = False,
) -> str:
    return render(
        _head(to_user, from_user, "shortvideo" if short else "video", create_time)
        + [
            ("MediaId", media_id, True),
            ("ThumbMediaId", thumb_media_id, True),
            _msg_id(msg_id),
        ]
    )


def location(
    to_user: str,
    from_user: str,
    x: float,
    y: float,
    scale: int = 15,
    label: str = "",
    msg_id: str | int | None = None,
    create_time: int | None = None,
) -> str:
    return render(
        _head(to_user, from_user, "location", create_time)
        + [
            ("Location_X", x, False),
            ("Location_Y", y, False),
            ("Scale", scale, False),
            ("Label", label, True),
            _msg_id(msg_id),
        ]
    )


def link(
    to_user: str,
    from_user: str,
    title: str,
    description: str,
    url: str,
    msg_id: str | int | None = None,
    create_time: int | None = None,
) -> str:
    return render(
        _head(to_user, from_user, "link", create_time)
        + [
            ("Title", title, True),
            ("Description", description, True),
            ("Url", url, True),
            _msg_id(msg_id),
        ]
    )


def event(
    to_user: str,
    from_user: str,
    event_name: str,
    event_key: str | None = None,
    ticket: str | None = None,
    create_time: int | None = None,
) -> str:
    """subscribe/unsubscribe/CLICK/VIEW/SCAN...; no MsgId, so dedup is on sender + CreateTime."""
    fields = _head(to_user, from_user, "event", create_time) + [("Event", event_name, True)]
    if event_key is not None:
        fields.append(("EventKey", event_key, True))
    if ticket is not None:
        fields.append(("Ticket", ticket, True))
    return render(fields)


def xml_to_dict(xml_text: str) -> dict[str, Any]:
    """Children of the root as a dict: nested elements become dicts, repeats lists."""
    return _children(ET.fromstring(xml_text))


def _children(elem: ET.Element) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in elem:
        value: Any = _children(child) if len(child) else (child.text or "").strip()
        if child.tag in out:
            prev = out[child.tag]
            out[child.tag] = [*prev, value] if isinstance(prev, list) else [prev, value]
        else:
            out[child.tag] = value
    return out
