"""The answer check: an answer stands only where the passages back it."""

from __future__ import annotations

from app.pipeline.answer import AnswerGate
from app.pipeline.grounding import support

PAYMENT = (
    "问：支持哪些支付方式？\n"
    "答：目前支持微信支付以及云朵小铺礼品卡支付，企业采购订单另外支持对公转账。"
)
COUPON = "问：优惠券有效期多久？\n答：优惠券的有效期以券面为准，会员券自领取之日起12个月内有效。"
WARRANTY = "问：电饭煲保修多久？\n答：小家电自签收之日起享受一年免费保修。"


def test_words_gathered_from_different_passages_do_not_back_a_claim() -> None:
    # Each word occurs somewhere, but no passage says the gift card is valid for 12 months.
    invented = support("礼品卡的有效期是12个月。", [PAYMENT, COUPON])
    assert invented.ratio < 0.7
    assert support("会员券自领取之日起12个月内有效。", [PAYMENT, COUPON]).ratio == 1.0


def test_each_sentence_may_come_from_its_own_passage() -> None:
    gate = AnswerGate([PAYMENT, WARRANTY], 0.7, lambda s: s)
    gate.feed("我们支持微信支付和礼品卡支付。小家电自签收之日起享受一年免费保修。")
    gate.finish(complete=True)
    assert not gate.refused
    assert "一年免费保修" in gate.text and "礼品卡支付" in gate.text


def test_an_invented_policy_becomes_the_hand_off() -> None:
    gate = AnswerGate([PAYMENT, COUPON], 0.7, lambda s: s)
    gate.feed("礼品卡的有效期是12个月。")
    gate.finish(complete=True)
    assert gate.refused and gate.text == ""


def test_a_passage_about_another_question_backs_no_claim() -> None:
    # Asked how long sweet potatoes take in the air fryer, a small model copies the
    # warranty entry: every word is in that passage, but the passage answers another
    # question (the pipeline marks it off topic by comparing the questions).
    copied = "小家电自签收之日起享受一年免费保修。"
    gate = AnswerGate([PAYMENT, WARRANTY], 0.7, lambda s: s, off_topic=[1])
    gate.feed(copied)
    gate.finish(complete=True)
    assert gate.refused and gate.text == ""

    on_topic = AnswerGate([PAYMENT, WARRANTY], 0.7, lambda s: s, off_topic=[0])
    on_topic.feed(copied)
    on_topic.finish(complete=True)
    assert not on_topic.refused and on_topic.text == copied


RETURNS = (
    "问：支持七天无理由退货吗？\n答：支持。自签收之日起7天内，商品未使用且包装齐全，即可申请"
    "七天无理由退货。贴身纺织品（如毛巾、浴巾）已拆封的不适用七天无理由退货。"
)


def test_a_bare_yes_is_not_an_answer_but_a_yes_with_its_conditions_is() -> None:
    # Asked whether an opened bath towel can be returned, the 1.5B answered "支持。": the
    # word is in the entry, but the entry's answer for towels is no.
    for bare in ("支持。", "云朵小铺承担。"):
        gate = AnswerGate([RETURNS], 0.7, lambda s: s)
        gate.feed(bare)
        gate.finish(complete=True)
        assert gate.refused and gate.text == ""

    gate = AnswerGate([RETURNS], 0.7, lambda s: s)
    gate.feed("支持。自签收之日起7天内，商品未使用且包装齐全，即可申请七天无理由退货。")
    gate.finish(complete=True)
    assert not gate.refused and gate.text.startswith("支持。自签收之日起7天内")

    number = AnswerGate([RETURNS], 0.7, lambda s: s)  # one number is a checkable claim
    number.feed("7天内。")
    number.finish(complete=True)
    assert not number.refused
