"""A kf/sync_msg message, read: who sent it, to which account, and the same message as the
plain fields every channel's intake takes (the Official Account's XML names), so that
routing, storing once by MsgId, admission and answering need nothing of their own.

sync_msg's messages are JSON: ``msgid``, ``open_kfid``, ``external_userid``,
``send_time``, ``origin``, ``msgtype`` and a member named after the type (``text``,
``image``, ...). Events (``msgtype`` "event") carry the account and customer inside
``event`` instead.
"""

from __future__ import annotations

from typing import Any

#: The Official Account's MsgType for each kf msgtype whose content maps onto its fields.
_MEDIA_TYPES = ("image", "voice", "video", "file")
#: sync_msg's ``voice_format``: the audio format WeChat delivers voice messages in, and the
#: ``Format`` they are stored with (app/messages/voice.py decodes by it).
VOICE_FORMATS = {0: "amr", 1: "silk"}
#: The one the service asks for (app/channels/kf/sync.py): AMR, which every decoder reads.
VOICE_FORMAT = 0


def origin(msg: dict[str, Any]) -> int:
    try:
        return int(msg.get("origin") or 0)
    except (TypeError, ValueError):
        return 0


def event_of(msg: dict[str, Any]) -> dict[str, Any]:
    event = msg.get("event") if msg.get("msgtype") == "event" else None
    return event if isinstance(event, dict) else {}


def event_type(msg: dict[str, Any]) -> str:
    return str(event_of(msg).get("event_type") or "")


def customer(msg: dict[str, Any]) -> str:
    """The external_userid: at the top for messages, inside ``event`` for events."""
    return str(msg.get("external_userid") or event_of(msg).get("external_userid") or "")


def account(msg: dict[str, Any]) -> str:
    """The open_kfid: at the top for messages, inside ``event`` for events."""
    return str(msg.get("open_kfid") or event_of(msg).get("open_kfid") or "")


def welcome_code(msg: dict[str, Any]) -> str:
    """enter_session's ``welcome_code`` (only when WeChat lets the API greet: no welcome
    in 48 hours and no message from the customer yet); valid 20 s, usable once."""
    return (
        str(event_of(msg).get("welcome_code") or "") if event_type(msg) == "enter_session" else ""
    )


def to_fields(msg: dict[str, Any]) -> dict[str, str]:
    """The message as the plain fields of the Official Account's XML (ToUserName the
    open_kfid, FromUserName the external_userid, MsgId the msgid, MsgType and its own),
    for the shared intake (app/messages/intake.py ``take_in``, channel "kf")."""
    msgtype = str(msg.get("msgtype") or "")
    body = msg.get(msgtype) if isinstance(msg.get(msgtype), dict) else {}
    fields = {
        "ToUserName": account(msg),
        "FromUserName": customer(msg),
        "CreateTime": str(msg.get("send_time") or ""),
        "MsgType": msgtype,
        "MsgId": str(msg.get("msgid") or ""),
    }
    if msgtype == "text":
        fields["Content"] = str(body.get("content") or "")
    elif msgtype in _MEDIA_TYPES:
        fields["MediaId"] = str(body.get("media_id") or "")
        if msgtype == "voice":
            fields["Format"] = VOICE_FORMATS[VOICE_FORMAT]  # what sync_msg was asked for
    elif msgtype == "location":
        fields["Location_X"] = str(body.get("latitude", ""))
        fields["Location_Y"] = str(body.get("longitude", ""))
        fields["Label"] = " ".join(
            str(body.get(k) or "") for k in ("name", "address") if body.get(k)
        )
    elif msgtype == "link":
        fields["Title"] = str(body.get("title") or "")
        fields["Description"] = str(body.get("desc") or "")
        fields["Url"] = str(body.get("url") or "")
    elif msgtype == "miniprogram":
        fields["Title"] = str(body.get("title") or "")
    elif msgtype == "event":
        fields["Event"] = event_type(msg)
        fields["EventKey"] = str(event_of(msg).get("scene") or "")
    return fields
