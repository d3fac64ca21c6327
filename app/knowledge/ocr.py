"""Reading text out of images (uploaded pictures, scanned PDF pages) with rapidocr-onnxruntime.

The engine (three ONNX models, ~1 s to load) is created once per process on first use; calls
are serialised because one onnxruntime session already uses every core.
"""

from __future__ import annotations

import threading
from typing import Any

from PIL import Image

#: Longest side an image is scaled down to before OCR: larger only costs time.
MAX_SIDE = 2400
#: Lines the recogniser is less sure of than this are dropped (noise, stray marks).
MIN_SCORE = 0.5

_engine: Any = None
_lock = threading.Lock()


def _get_engine() -> Any:
    global _engine
    with _lock:
        if _engine is None:
            from rapidocr_onnxruntime import RapidOCR

            _engine = RapidOCR()
        return _engine


def read_lines(image: Image.Image) -> list[str]:
    """The text lines of ``image`` in reading order (top to bottom, then left to right)."""
    import numpy as np

    img = image.convert("RGB")
    if max(img.size) > MAX_SIDE:
        img.thumbnail((MAX_SIDE, MAX_SIDE))
    engine = _get_engine()
    with _lock:
        result, _elapsed = engine(np.asarray(img))
    if not result:
        return []
    lines = [(box[0][1], box[0][0], text) for box, text, score in result if score >= MIN_SCORE]
    # Boxes on one visual line differ by a few pixels in y: bucket by half a line height.
    heights = sorted(abs(box[2][1] - box[0][1]) for box, _t, _s in result) or [10]
    band = max(4.0, heights[len(heights) // 2] / 2)
    lines.sort(key=lambda t: (round(t[0] / band), t[1]))
    return [text.strip() for _y, _x, text in lines if text.strip()]
