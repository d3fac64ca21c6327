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

from app.errors import BadRequest

#: Formats a phone sends as pictures; anything else is refused before decoding.
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "GIF", "BMP", "WEBP"})
#: Below this recognition confidence a line is more likely noise than text.
MIN_CONFIDENCE = 0.5


class ImageRejected(BadRequest, ValueError):
    """The bytes are not an image we read (not an image, unknown format, too many pixels)."""

    code = "bad_image"

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


_models: object = None
_models_lock = threading.Lock()
#: Longest side an image is scaled down to before OCR: larger only costs time.
MAX_SIDE = 2400


def _rapidocr() -> tuple[object, threading.Lock]:
    """RapidOCR's models, loaded once per process (about a second and 100 MB) and shared by
    every engine: the WeChat pictures, the Dify tool and the knowledge formats."""
    global _models
    with _models_lock:
        if _models is None:
            from rapidocr_onnxruntime import RapidOCR

            _models = (RapidOCR(), threading.Lock())
        return _models  # type: ignore[return-value]


class OcrEngine:
    """Thread-safe: onnxruntime sessions may be shared, but RapidOCR keeps per-call state,
    so calls are serialised (one onnxruntime call already uses every core)."""

    def __init__(self, max_pixels: int = 40_000_000) -> None:
        self.max_pixels = max_pixels
        self._ocr, self._lock = _rapidocr()

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
        except UnidentifiedImageError:
            raise ImageRejected(
                "not an image: send a PNG, JPEG, WEBP, BMP, GIF or TIFF file"
            ) from None
        except (OSError, SyntaxError):
            raise ImageRejected("not a readable image: the file is truncated or damaged") from None
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise ImageRejected(f"image too large: {exc}", too_large=True) from None
        if getattr(img, "is_animated", False):
            img.seek(0)
        return img.convert("RGB")

    def read(self, data: bytes) -> OcrResult:
        """The text lines found in the image ``data`` (an empty result when there is none)."""
        return self.read_image(self.open_image(data))

    def read_image(self, img: Image.Image) -> OcrResult:
        """The text lines of a decoded image, in reading order (top to bottom, then left to
        right; RapidOCR's own order breaks a line whose boxes differ by a few pixels)."""
        import numpy as np

        img = img.convert("RGB")
        if max(img.size) > MAX_SIDE:
            img.thumbnail((MAX_SIDE, MAX_SIDE))
        # RapidOCR takes OpenCV's channel order (BGR).
        pixels = np.ascontiguousarray(np.asarray(img)[:, :, ::-1])
        with self._lock:
            raw, _elapsed = self._ocr(pixels)  # type: ignore[operator]
        lines = []
        for box, text, score in raw or []:
            text = str(text).strip()
            if text and float(score) >= MIN_CONFIDENCE:
                points = tuple((float(x), float(y)) for x, y in box)
                lines.append(OcrLine(text, float(score), points))
        return OcrResult(_reading_order(lines), img.width, img.height)


def _reading_order(lines: list[OcrLine]) -> tuple[OcrLine, ...]:
    """Boxes on one visual line differ by a few pixels in y: bucket by half a line height."""
    if not lines:
        return ()
    heights = sorted(abs(line.box[2][1] - line.box[0][1]) for line in lines)
    band = max(4.0, heights[len(heights) // 2] / 2)
    return tuple(sorted(lines, key=lambda ln: (round(ln.box[0][1] / band), ln.box[0][0])))
