"""RapidOCR (PP-OCR models on onnxruntime, shipped inside the pip package: nothing is
downloaded) behind a small interface that checks the bytes are a sane image first.

Create one engine per process (app.resources.ocr_engine): loading the three ONNX models
takes about a second; reading a screenshot then takes a fraction of one.
"""

from __future__ import annotations

import io
import threading
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

#: Formats a phone sends as pictures; anything else is refused before decoding.
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "GIF", "BMP", "WEBP"})
#: Below this recognition confidence a line is more likely noise than text.
MIN_CONFIDENCE = 0.5


class ImageRejected(ValueError):
    """The bytes are not an image we read (not an image, unknown format, too many pixels)."""

    def __init__(self, reason: str, *, too_large: bool = False) -> None:
        super().__init__(reason)
        self.too_large = too_large


@dataclass(frozen=True)
class OcrLine:
    text: str
    confidence: float
    box: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class OcrResult:
    lines: tuple[OcrLine, ...]
    width: int
    height: int

    @property
    def text(self) -> str:
        """The lines in RapidOCR's reading order (top to bottom, left to right)."""
        return "\n".join(line.text for line in self.lines)


class OcrEngine:
    """Thread-safe: onnxruntime sessions may be shared, but RapidOCR keeps per-call state,
    so calls are serialised (a worker reads one image at a time anyway)."""

    def __init__(self, max_pixels: int = 40_000_000) -> None:
        from rapidocr_onnxruntime import RapidOCR

        self.max_pixels = max_pixels
        self._ocr = RapidOCR()
        self._lock = threading.Lock()

    def open_image(self, data: bytes) -> Image.Image:
        """Decodes ``data`` as an RGB image, refusing non-images and decompression bombs."""
        if not data:
            raise ImageRejected("empty file")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(data))
                if img.format not in ACCEPTED_FORMATS:
                    raise ImageRejected(f"unsupported image format {img.format}")
                if img.width * img.height > self.max_pixels:
                    raise ImageRejected(
                        f"image has {img.width}x{img.height} pixels, over {self.max_pixels}",
                        too_large=True,
                    )
                img.load()
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise ImageRejected(f"not a readable image: {exc}") from None
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise ImageRejected(f"image too large: {exc}", too_large=True) from None
        if getattr(img, "is_animated", False):
            img.seek(0)
        return img.convert("RGB")

    def read(self, data: bytes) -> OcrResult:
        """The text lines found in the image ``data`` (an empty result when there is none)."""
        import numpy as np

        img = self.open_image(data)
        # RapidOCR takes OpenCV's channel order (BGR).
        pixels = np.ascontiguousarray(np.asarray(img)[:, :, ::-1])
        with self._lock:
            raw, _elapsed = self._ocr(pixels)
        lines = []
        for box, text, score in raw or []:
            text = str(text).strip()
            if text and float(score) >= MIN_CONFIDENCE:
                points = tuple((float(x), float(y)) for x, y in box)
                lines.append(OcrLine(text, float(score), points))
        return OcrResult(tuple(lines), img.width, img.height)
