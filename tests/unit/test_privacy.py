"""Personal numbers are masked before anything is stored or logged."""

from __future__ import annotations

import logging

import pytest

from app.pipeline.privacy import install_log_masking, mask_pii


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("我的手机13812345678收不到验证码", "我的手机138****5678收不到验证码"),
        ("电话 +86 138 1234 5678", "电话 138****5678"),
        ("座机010-62345678", "座机010****5678"),
        ("身份证110105199003078712", "身份证110***********8712"),
        ("身份证号11010519900307871x", "身份证号110***********871x"),
        ("卡号6222 0212 3456 7890 128", "卡号622************0128"),
        ("visa 4111-1111-1111-1111", "visa 411*********1111"),
    ],
)
def test_numbers_are_masked(raw: str, masked: str) -> None:
    assert mask_pii(raw) == masked


@pytest.mark.parametrize(
    "text",
    [
        "订单号20231121000012345678",  # an order number is not a card (no Luhn, no 62)
        "满99元包邮，48小时内发货，2023年11月21日",
        "退款1-3个工作日到账，客服时间9:00-21:00",
    ],
)
def test_other_numbers_are_left_alone(text: str) -> None:
    assert mask_pii(text) == text


def test_log_records_are_masked_whatever_the_handler(caplog: pytest.LogCaptureFixture) -> None:
    install_log_masking()
    install_log_masking()  # idempotent
    with caplog.at_level(logging.INFO):
        logging.getLogger("test.privacy").info("customer wrote %s", "手机13812345678")
    assert "13812345678" not in caplog.text
    assert "138****5678" in caplog.text
