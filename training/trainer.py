"""Trains a head over a bot's backbone on a labelled dataset and publishes it as a new model version."""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from spotbot.bot import TrainableBot, resolve_bot
from spotbot.services.decoding import AssetError, decode_asset
from spotbot.domain.heads import Head
from spotbot.services.models import METRICS, ModelRegistry, ModelStore, new_version_name, pack_model_dir, validate_version_name
from spotbot.settings import Settings
from spotbot.services.shard import limits_from
from training.datasets import DatasetError, Example, load_examples, read_bytes

HEADS = ("logistic", "mlp")


@dataclass(frozen=True)
class TrainConfig:
    bot: str
    data: str
    version: str | None = None
    head: str = "logistic"
    test_fraction: float = 0.2
    seed: int = 0
    min_accuracy: float | None = None  # default: the majority-label accuracy plus 0.05
    base_version: str | None = None  # the version whose backbone to train on (car-model)
    max_per_label: int | None = None
    regularization: float = 1.0  # inverse strength, as scikit-learn's C
    hidden_units: int = 256
    batch_size: int = 32
    threads: int | None = None


@dataclass
class TrainResult:
    bot: str
    version: str
    location: str
    metrics: dict[str, Any]
    approved: bool
    model_dir: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)


ProgressCallback = Callable[[str, int, int], None]


def train(
    config: TrainConfig,
    settings: Settings,
    *,
    registry: ModelRegistry,
    store: ModelStore | None,
    output_dir: Path | None = None,
    on_progress: ProgressCallback = lambda phase, done, total: None,
) -> TrainResult:
    """Embeds the dataset, trains and evaluates a head, writes the version to output_dir and/or the store."""
    if config.head not in HEADS:
        raise ValueError(f"head must be one of {', '.join(HEADS)}, got {config.head!r}")
    if not 0.05 <= config.test_fraction <= 0.5:
        raise ValueError(f"test fraction must be between 0.05 and 0.5, got {config.test_fraction}")
    if config.version is not None:
        validate_version_name(config.version)  # before any work: the name becomes a folder in the store
    bot_class = resolve_bot(config.bot)
    if not issubclass(bot_class, TrainableBot):
        raise ValueError(f"bot {config.bot!r} cannot be fine-tuned: it has no embedding backbone")
    timings: dict[str, float] = {}
    started = time.monotonic()

    examples = _cap_per_label(load_examples(config.data, bot_class.file_types, settings), config)
    base = registry.resolve(bot_class.name, config.base_version)  # the version whose backbone to train on
    bot = bot_class()
    bot.load_backbone(base.path if base else None, threads=config.threads)
    timings["load_seconds"] = time.monotonic() - started

    started = time.monotonic()
    features = embed_examples(bot, examples, settings, config.batch_size, on_progress)
    timings["embed_seconds"] = time.monotonic() - started

    started = time.monotonic()
    labels = sorted({e.label for e in examples})
    y = np.array([labels.index(e.label) for e in examples])
    head, metrics = fit_head(features, y, labels, config)
    timings["fit_seconds"] = time.monotonic() - started
    metrics.update(examples=len(examples), label_counts=dict(Counter(e.label for e in examples)))

    minimum = config.min_accuracy if config.min_accuracy is not None else min(0.99, metrics["majority_accuracy"] + 0.05)
    version = config.version or new_version_name()
    manifest = {
        **bot.head_manifest(),
        "version": version,
        "labels": labels,
        "approval": {"metric": "accuracy", "min": round(minimum, 4)},
        "trained_from": base.version if base else None,
        "created_at": datetime.now(timezone.utc).isoformat(),
    }
    training_config = {**asdict(config), "python": platform.python_version(), "timings": timings}

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(output_dir) if output_dir else Path(tmp) / "model"
        model_dir.mkdir(parents=True, exist_ok=True)
        for path in bot.backbone_files(base.path if base else None):
            shutil.copyfile(path, model_dir / path.name)
        head.save(model_dir)
        location = write_version(model_dir, manifest, metrics, training_config, store)
    return TrainResult(
        bot=bot_class.name,
        version=version,
        location=location,
        metrics=metrics,
        approved=metrics["accuracy"] >= minimum,
        model_dir=Path(output_dir) if output_dir else None,
        timings=timings,
    )


def write_version(
    model_dir: Path, manifest: dict[str, Any], metrics: dict[str, Any], training_config: dict[str, Any],
    store: ModelStore | None,
) -> str:
    """Adds model.json, metrics.json and config.json to a model dir holding its files; publishes it to store.

    Returns where the version is: the store's location for it, or the model dir.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "model.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    (model_dir / METRICS).write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
    (model_dir / "config.json").write_text(json.dumps(training_config, indent=2, default=str), encoding="utf-8")
    if store is None:
        return str(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        archive = pack_model_dir(model_dir, Path(tmp) / "model.tar.gz")
        return store.publish(manifest["bot"], manifest["version"], archive)


def _cap_per_label(examples: list[Example], config: TrainConfig) -> list[Example]:
    if not config.max_per_label:
        return examples
    rng = np.random.default_rng(config.seed)
    kept: list[Example] = []
    for label in sorted({e.label for e in examples}):
        of_label = [e for e in examples if e.label == label]
        picks = rng.permutation(len(of_label))[: config.max_per_label]
        kept.extend(of_label[i] for i in sorted(picks))
    return kept


def embed_examples(
    bot: TrainableBot, examples: list[Example], settings: Settings, batch_size: int, on_progress: ProgressCallback
) -> np.ndarray:
    limits = limits_from(settings)

    def decoded(example: Example) -> Any:
        data = read_bytes(example.source, settings, limits.max_asset_bytes)
        try:
            return decode_asset(data, bot.input_kind, limits)  # type: ignore[arg-type]
        except AssetError as error:
            raise DatasetError(f"cannot use {example.source}: {error}") from error

    chunks = []
    with ThreadPoolExecutor(max_workers=settings.read_concurrency) as pool:
        for start in range(0, len(examples), batch_size):
            batch = list(pool.map(decoded, examples[start : start + batch_size]))
            chunks.append(np.asarray(bot.embed(batch), dtype=np.float32))
            on_progress("embed", min(start + batch_size, len(examples)), len(examples))
    return np.vstack(chunks)


def fit_head(features: np.ndarray, y: np.ndarray, labels: list[str], config: TrainConfig) -> tuple[Head, dict[str, Any]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    test_size = max(config.test_fraction, len(labels) / len(y))  # at least one test example per label
    if test_size >= 0.5:
        raise DatasetError(f"{len(y)} examples are too few for {len(labels)} labels: add more examples")
    x_train, x_test, y_train, y_test = train_test_split(
        features, y, test_size=test_size, random_state=config.seed, stratify=y
    )
    if config.head == "logistic":
        model = LogisticRegression(C=config.regularization, max_iter=2000, random_state=config.seed)
        model.fit(x_train, y_train)
        if len(labels) == 2:
            head = Head.from_binary_logit(labels, model.coef_[0], float(model.intercept_[0]))
        else:
            head = Head(labels=labels, layers=[(model.coef_.astype(np.float32), model.intercept_.astype(np.float32))])
    else:
        model = MLPClassifier(
            hidden_layer_sizes=(config.hidden_units,),
            alpha=1e-3 / config.regularization,
            max_iter=500,
            early_stopping=len(y_train) >= 1000,  # a 10% validation split starves small sets
            random_state=config.seed,
        )
        model.fit(x_train, y_train)
        layers = [(w.T.astype(np.float32), b.astype(np.float32)) for w, b in zip(model.coefs_, model.intercepts_)]
        if len(labels) == 2:  # scikit-learn ends a binary MLP in one logistic unit
            w, b = layers[-1]
            layers[-1] = (np.vstack([-w / 2, w / 2]), np.array([-b[0] / 2, b[0] / 2], dtype=np.float32))
        head = Head(labels=labels, layers=layers)

    predicted = head.predict_proba(x_test).argmax(axis=1)
    majority = Counter(y_train.tolist()).most_common(1)[0][0]
    report = classification_report(y_test, predicted, labels=list(range(len(labels))), target_names=labels,
                                   output_dict=True, zero_division=0)
    metrics = {
        "accuracy": round(float(accuracy_score(y_test, predicted)), 4),
        "majority_accuracy": round(float(np.mean(y_test == majority)), 4),
        "train_examples": int(len(y_train)),
        "test_examples": int(len(y_test)),
        "per_label": {
            label: {k: round(float(report[label][k]), 4) for k in ("precision", "recall", "f1-score", "support")}
            for label in labels
        },
        "confusion": confusion_matrix(y_test, predicted, labels=list(range(len(labels)))).tolist(),
        "head": config.head,
    }
    return head, metrics
