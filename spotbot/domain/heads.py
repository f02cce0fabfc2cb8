"""Classifier heads over a backbone's embeddings, stored as plain arrays: inference needs numpy only."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HEAD_FILE = "head.npz"


@dataclass(frozen=True)
class Head:
    """Dense layers, ReLU between them, softmax at the end. One layer is a linear (logistic) head."""

    labels: list[str]
    layers: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (weights [out, in], bias [out])

    def __post_init__(self) -> None:
        if len(self.labels) < 2:
            raise ValueError("a head needs at least two labels")
        if not self.layers or self.layers[-1][0].shape[0] != len(self.labels):
            raise ValueError("the last layer of a head must have one output per label")

    @property
    def input_dim(self) -> int:
        return int(self.layers[0][0].shape[1])

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"head takes features of width {self.input_dim}, got shape {x.shape}")
        for i, (weights, bias) in enumerate(self.layers):
            x = x @ weights.T + bias
            if i < len(self.layers) - 1:
                x = np.maximum(x, 0.0)
        x = x - x.max(axis=1, keepdims=True)
        e = np.exp(x)
        return e / e.sum(axis=1, keepdims=True)

    def top(self, features: np.ndarray, k: int = 3) -> list[list[tuple[str, float]]]:
        probs = self.predict_proba(features)
        order = np.argsort(-probs, axis=1)[:, :k]
        return [[(self.labels[j], float(row[j])) for j in idx] for row, idx in zip(probs, order)]

    def save(self, folder: Path) -> Path:
        arrays = {}
        for i, (weights, bias) in enumerate(self.layers):
            arrays[f"w{i}"] = weights.astype(np.float32)
            arrays[f"b{i}"] = bias.astype(np.float32)
        path = Path(folder) / HEAD_FILE
        np.savez(path, labels=np.array(self.labels), **arrays)
        return path

    @classmethod
    def load(cls, path: Path) -> Head:
        with np.load(path, allow_pickle=False) as data:
            count = sum(1 for name in data.files if name.startswith("w"))
            layers = [(data[f"w{i}"], data[f"b{i}"]) for i in range(count)]
            labels = [str(label) for label in data["labels"]]
        return cls(labels=labels, layers=layers)

    @classmethod
    def from_binary_logit(cls, labels: list[str], weights: np.ndarray, bias: float) -> Head:
        """A two-label softmax equal to sigmoid(w.x + b) for labels[1], from a binary logistic regression."""
        w = np.asarray(weights, dtype=np.float32).reshape(1, -1)
        return cls(labels=labels, layers=[(np.vstack([-w / 2, w / 2]), np.array([-bias / 2, bias / 2], dtype=np.float32))])
