"""Callback authenticity against WeChat's official sample vectors."""

from __future__ import annotations

import pytest

from app.channels.wechat.security import (
    CallbackRejected,
    check_signature,
    check_timestamp,
    decrypt,
    parse_xml,
)

TOKEN, AES, APPID = "spamtest", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx2c2769f8efd9abc2"
ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PG"
    "HQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6"
    "tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp"
    "3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhv"
    "Ql+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
)


def test_official_get_signature() -> None:
    check_signature(TOKEN, "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a", "1409735669", "1320562132")
    with pytest.raises(CallbackRejected) as exc:
        check_signature(TOKEN, "0" * 40, "1409735669", "1320562132")
    assert exc.value.status == 403


def test_official_safe_mode_vector_decrypts() -> None:
    check_signature(
        TOKEN, "5d197aaffba7e9b25a30732f161a50dee96bd5fa", "1409735669", "1320562132", ENCRYPT
    )
    fields = parse_xml(decrypt(AES, APPID, ENCRYPT).encode())
    assert fields["Content"] == "abcdteT"
    assert fields["MsgId"] == "6054768590064713728"


def test_wrong_appid_and_garbage_are_400() -> None:
    for appid, blob in (
        (APPID[:-1] + "x", ENCRYPT),
        (APPID, "not-base64!!"),
        (APPID, ENCRYPT[:-8]),
    ):
        with pytest.raises(CallbackRejected) as exc:
            decrypt(AES, appid, blob)
        assert exc.value.status == 400


def test_replayed_timestamp_is_refused() -> None:
    with pytest.raises(CallbackRejected):
        check_timestamp("1409735669", 300, now=1409735669 + 301)
    check_timestamp("1409735669", 300, now=1409735669 + 299)


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Content>&a;</Content></xml>',
        b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><C>&e;</C></xml>',
        b"<xml><Content>unterminated",
        b"",
    ],
)
def test_hostile_or_broken_xml_is_400(body: bytes) -> None:
    with pytest.raises(CallbackRejected) as exc:
        parse_xml(body)
    assert exc.value.status == 400
