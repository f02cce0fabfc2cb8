"""sentiment: Chinese text to positive or negative with a score.

The model is a versioned artifact: a folder with model.json naming its format. The packaged
baseline is snownlp's naive Bayes model (format "snownlp"); a model dir may carry its own
snownlp-trained `sentiment.marshal`.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar

from spotbot.bot import Bot
from spotbot.domain import Tag


class SentimentBot(Bot):
    name: ClassVar[str] = "sentiment"
    file_types: ClassVar[tuple[str, ...]] = (".txt",)
    input_kind: ClassVar[str] = "text"
    batch_size: ClassVar[int] = 32
    max_chars: ClassVar[int] = 4000  # snownlp's time grows with length; a long text is judged by its start
    description: ClassVar[str] = "Chinese text: positive or negative, with a score"

    def __init__(self) -> None:
        self._classify: Any = None

    @classmethod
    def default_model_version(cls) -> str:
        return f"snownlp-{version('snownlp')}"

    def load(self, model_dir: Path | None = None, *, threads: int | None = None) -> None:
        manifest = {"format": "snownlp", "version": self.default_model_version()}
        if model_dir is not None:
            manifest_path = Path(model_dir) / "model.json"
            if not manifest_path.is_file():
                raise FileNotFoundError(f"sentiment model dir {model_dir} has no model.json")
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("format") != "snownlp":
            raise ValueError(f"sentiment bot cannot load model format {manifest.get('format')!r}")
        from snownlp import sentiment

        classifier = sentiment.Sentiment()
        weights = Path(model_dir) / "sentiment.marshal" if model_dir is not None else None
        if weights is not None and (weights.exists() or weights.with_suffix(".marshal.3").exists()):
            classifier.load(str(weights))
        else:
            classifier = sentiment.classifier  # the model snownlp ships, loaded once at import
        self._classify = classifier.classify
        self.model_version = str(manifest.get("version", self.default_model_version()))

    def predict(self, batch: list[Any]) -> list[list[Tag]]:
        if self._classify is None:
            raise RuntimeError("sentiment bot is not loaded: call load() first")
        tags = []
        for text in batch:
            positive = float(self._classify(text[: self.max_chars]))
            label, score = ("positive", positive) if positive >= 0.5 else ("negative", 1.0 - positive)
            extra = {"truncated_at": self.max_chars} if len(text) > self.max_chars else {}
            tags.append([Tag(label=label, score=round(score, 4), **extra)])
        return tags
