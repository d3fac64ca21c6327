"""The OCR engine on pictures made here (real RapidOCR), and the question built from it."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageDraw, ImageFont

from app.messages.images import MAX_OCR_CHARS, compose_question
from app.ocr import ImageRejected, OcrEngine

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


@pytest.fixture(scope="module")
def engine() -> OcrEngine:
    return OcrEngine(max_pixels=4_000_000)


def _picture(lines: list[str], fmt: str = "PNG", size: tuple[int, int] = (640, 240)) -> bytes:
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, 30)
    for i, line in enumerate(lines):
        draw.text((20, 30 + 60 * i), line, font=font, fill="black")
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF"])
def test_reads_the_text_of_a_screenshot(engine: OcrEngine, fmt: str) -> None:
    text = engine.read(_picture(["Payment failed", "Order 2026112188"], fmt)).text
    text = text.replace(" ", "")  # PP-OCR drops some spaces between Latin words
    assert "Paymentfailed" in text and "2026112188" in text
    assert text.index("Payment") < text.index("2026112188")  # reading order


def test_a_picture_without_text_reads_as_empty(engine: OcrEngine) -> None:
    assert engine.read(_picture([])).text == ""


@pytest.mark.parametrize(
    ("data", "too_large"),
    [
        (b"", False),
        (b"%PDF-1.4\n1 0 obj<<>>endobj\n", False),
        (b"MZ\x90\x00" + b"\0" * 64, False),  # an executable
        (_picture(["x"])[:200], False),  # truncated
        (_picture(["x"], size=(2500, 2000)), True),  # over max_pixels
    ],
    ids=["empty", "pdf", "exe", "truncated", "too-many-pixels"],
)
def test_refuses_what_is_not_a_sane_image(engine: OcrEngine, data: bytes, too_large: bool) -> None:
    with pytest.raises(ImageRejected) as info:
        engine.read(data)
    assert info.value.too_large is too_large


def test_question_puts_the_customers_words_before_the_pictures_text() -> None:
    q = compose_question("Payment failed\nE1005", ["付款弹出这个", "怎么办"])
    assert q.index("付款弹出这个；怎么办") < q.index("Payment failed\nE1005")
    assert "E1005" in compose_question("E1005", [])
    assert len(compose_question("字" * 5000, [])) < MAX_OCR_CHARS + 100
