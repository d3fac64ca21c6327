"""A customer asking an FAQ's own question (or a listed paraphrase) gets its answer verbatim."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.pipeline.answer import faq_match


@dataclass
class Hit:
    text: str
    source: str = "faq.csv"
    metadata: dict = field(default_factory=dict)


SHIPPING = Hit(
    "下单后多久发货？",
    metadata={
        "question": "下单后多久发货？",
        "answer": "付款后48小时内发货。",
        "similar_questions": ["我的订单还没发货", "什么时候发货"],
    },
)
POLICY = Hit("退货政策全文……")


def test_exact_question_and_listed_paraphrase_match() -> None:
    assert faq_match("下单后多久发货", [POLICY, SHIPPING], 0.9) is SHIPPING
    assert faq_match("我的订单还没发货！", [SHIPPING], 0.9) is SHIPPING


def test_a_different_question_goes_to_the_model() -> None:
    assert faq_match("我的订单还没发货，能改地址吗？", [SHIPPING], 0.9) is None
    assert faq_match("下单后多久发货", [POLICY], 0.9) is None
