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


INSTALL = (
    "问：提供安装服务吗？\n答：商品页标有「免费安装」的商品（如电动晾衣架、吸顶灯）支持免费上门"
    "安装，下单后客服会在72小时内联系您预约安装时间。"
)


def test_how_many_is_answered_by_a_number_or_not_at_all() -> None:
    # Asked how many holes the clothes rack needs, the 1.5B said it is installed free.
    gate = AnswerGate([INSTALL], 0.7, lambda s: s, question="晾衣架安装需要在墙上打几个孔？")
    gate.feed("商品页标有「免费安装」的商品支持免费上门安装。")
    gate.finish(complete=True)
    assert gate.refused and gate.text == ""

    # A number, even a sentence later, answers it; nothing is shown before the number.
    gate = AnswerGate([INSTALL], 0.7, lambda s: s, question="晾衣架安装需要在墙上打几个孔？")
    assert gate.feed("电动晾衣架支持免费上门安装。") == []
    shown = gate.feed("下单后客服会在72小时内联系您预约安装时间。")
    gate.finish(complete=True)
    assert not gate.refused and "".join(shown) == gate.text
    assert gate.text.startswith("电动晾衣架支持免费上门安装。")


def test_questions_that_ask_for_a_quantity_are_told_apart() -> None:
    from app.pipeline.grounding import asks_quantity, states_quantity

    asking = {
        "空气炸锅做鸡翅要几分钟？": "time",
        "退款多久能到账": "time",
        "客服几点上班": "time",
        "安装要多少钱？": "price",
        "电饭煲的功率是多少瓦？": "count",
        "墙上打几个孔": "count",
    }
    for question, kind in asking.items():
        assert asks_quantity(question) == kind, question
    for other in ["有几种颜色？", "支持哪几种支付方式", "能开发票吗？", "买五千多块的东西有优惠吗"]:
        assert asks_quantity(other) is None, other

    for says in ["一年保修", "9:00-21:00", "满99元包邮", "两个"]:
        assert states_quantity(says, "count"), says
    assert states_quantity("安装免费", "price") and not states_quantity("安装免费", "count")
    assert states_quantity("当天发出", "time") and not states_quantity("当天发出", "price")
    assert not states_quantity("一般一下就好", "count")


TRANSFER = (
    "问：酒店提供接送机服务吗？\n答：酒店提供付费接送服务：杭州萧山国际机场单程260元/车，"
    "杭州东站单程120元/车，请至少提前24小时预约。"
)


def test_a_judged_answer_may_restate_the_customers_words() -> None:
    question = "有接机接站的服务吗 从萧山机场过来"
    draft = "接机接站单程260元/车。"
    judged = AnswerGate([TRANSFER], 0.7, lambda s: s, question=question, restates=True)
    judged.feed(draft)
    judged.finish(complete=True)
    assert not judged.refused and "260元" in judged.text
    # Without the judgement, "接机" (the customer's word) is a claim no passage backs.
    plain = AnswerGate([TRANSFER], 0.7, lambda s: s, question=question)
    plain.feed(draft)
    plain.finish(complete=True)
    assert plain.refused and "接机" in plain.unsupported


def test_a_number_is_never_excused_because_the_customer_wrote_it() -> None:
    gate = AnswerGate([TRANSFER], 0.7, lambda s: s, question="接机是不是300元一趟", restates=True)
    gate.feed("接机单程300元/车。")
    gate.finish(complete=True)
    assert gate.refused and gate.reason == "support"
