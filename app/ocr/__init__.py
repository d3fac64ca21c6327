"""Reading the text in images (screenshots, photos of error dialogs) with RapidOCR."""

from app.ocr.engine import ImageRejected, OcrEngine, OcrLine, OcrResult

__all__ = ["ImageRejected", "OcrEngine", "OcrLine", "OcrResult"]
