"""scene-text: printed Chinese and English text lines in images, with PP-OCRv4 via RapidOCR."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from spotbot.bot import Bot
from spotbot.domain import Tag



class SceneTextBot(Bot, builtin="scene-text"):
    reads_text_layer: ClassVar[bool] = True  # a PDF page's own text is exact: no OCR for it
    batch_size: ClassVar[int] = 4

    def __init__(self, min_score: float = 0.5) -> None:
        self.min_score = min_score
        self._ocr: Any = None

    @classmethod
    def default_model_version(cls) -> str:
        return f"ppocrv4-rapidocr-{version('rapidocr-onnxruntime')}"

    def load(self, model_dir: Path | None = None, *, threads: int | None = None) -> None:
        if model_dir is not None:
            raise ValueError("scene-text uses the PP-OCRv4 models inside rapidocr-onnxruntime; it takes no model dir")
        from rapidocr_onnxruntime import RapidOCR

        self._ocr = RapidOCR(
            # "max" only shrinks large images; the default "min" upscales small ones and is 3-10x slower
            det_limit_type="max",
            det_limit_side_len=960,
            intra_op_num_threads=threads or -1,
            inter_op_num_threads=1 if threads else -1,
            text_score=self.min_score,
        )
        self.model_version = self.default_model_version()

    def predict(self, batch: list[Any]) -> list[list[Tag]]:
        return [self._read_lines(image) for image in batch]

    def _read_lines(self, image: Any) -> list[Tag]:
        if self._ocr is None:
            raise RuntimeError("scene-text bot is not loaded: call load() first")
        result, _ = self._ocr(np.asarray(image)[:, :, ::-1])  # RapidOCR takes arrays as BGR
        if not result:  # None when the image has no text
            return []
        return [
            Tag(
                label="text",
                score=round(float(score), 4),
                text=str(text),
                box=[[int(round(x)), int(round(y))] for x, y in box],
            )
            for box, text, score in result
        ]
