"""The SageMaker training-container contract around `spotbot train`.

SageMaker runs the image with the data channel in /opt/ml/input/data/<channel>, hyperparameters
(all strings) in /opt/ml/input/config/hyperparameters.json, and tars /opt/ml/model into the
job's model.tar.gz. A failure is explained in /opt/ml/output/failure. The SM_* variables
override each path, which is how it runs locally and in tests.

Channels: `train` (label folders or a manifest file inside it), optional `model` (the version
to take the backbone from: a model.tar.gz or its extracted files, for car-model).
Hyperparameters: bot (required), head, test_fraction, seed, min_accuracy, max_per_label, version.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

from spotbot.adapters.model_stores import LocalModelStore, PackagedModelStore
from spotbot.services.models import ARCHIVE, MANIFEST, ModelRegistry, extract_archive
from spotbot.settings import Settings
from training.datasets import MANIFEST_SUFFIXES
from training.trainer import TrainConfig, train

PREFIX = Path("/opt/ml")


def _path(env: str, default: Path) -> Path:
    return Path(os.environ.get(env, str(default)))


def read_hyperparameters(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in raw.items()}


def config_from(hyperparameters: dict[str, str], data: str) -> TrainConfig:
    def number(name: str, kind: type, default: object) -> object:
        value = hyperparameters.get(name)
        return default if value in (None, "", "null") else kind(json.loads(value) if kind is not str else value)

    if "bot" not in hyperparameters:
        raise ValueError("hyperparameter 'bot' is required (car-model or sentiment)")
    return TrainConfig(
        bot=hyperparameters["bot"].strip('"'),
        data=data,
        version=hyperparameters.get("version", "").strip('"') or None,
        head=hyperparameters.get("head", "logistic").strip('"'),
        test_fraction=float(number("test_fraction", float, 0.2)),
        seed=int(number("seed", int, 0)),
        min_accuracy=number("min_accuracy", float, None),  # type: ignore[arg-type]
        max_per_label=number("max_per_label", int, None),  # type: ignore[arg-type]
        threads=os.cpu_count(),
    )


def dataset_location(channel: Path) -> str:
    """The channel itself (label folders), or the one manifest file in it."""
    manifests = [p for p in channel.iterdir() if p.is_file() and p.name.lower().endswith(MANIFEST_SUFFIXES)]
    if len(manifests) == 1:
        return str(manifests[0])
    return str(channel)


def base_model_store(channel: Path | None, work: Path, bot: str) -> LocalModelStore | None:
    """A one-version store made from the `model` channel, so the registry can hand out its backbone."""
    if channel is None or not channel.exists():
        return None
    version_dir = work / "base" / bot / "base"
    version_dir.mkdir(parents=True)
    archive = channel / ARCHIVE
    if archive.exists():
        (version_dir / ARCHIVE).write_bytes(archive.read_bytes())
    elif (channel / MANIFEST).exists():
        from spotbot.services.models import pack_model_dir

        pack_model_dir(channel, version_dir / ARCHIVE)
    else:
        raise ValueError(f"model channel {channel} holds neither {ARCHIVE} nor {MANIFEST}")
    extract_archive(version_dir / ARCHIVE, work / "check")  # fail early on a bad base archive
    return LocalModelStore(work / "base")


def main() -> int:
    prefix = _path("SM_PREFIX", PREFIX)
    model_dir = _path("SM_MODEL_DIR", prefix / "model")
    train_channel = _path("SM_CHANNEL_TRAIN", prefix / "input" / "data" / "train")
    model_channel = os.environ.get("SM_CHANNEL_MODEL") or str(prefix / "input" / "data" / "model")
    output_dir = _path("SM_OUTPUT_DIR", prefix / "output")
    hyperparameters_path = _path("SM_HPS_PATH", prefix / "input" / "config" / "hyperparameters.json")
    try:
        config = config_from(read_hyperparameters(hyperparameters_path), dataset_location(train_channel))
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(home=Path(tmp) / "home")
            base = base_model_store(Path(model_channel), Path(tmp), config.bot.split(":")[-1].strip())
            stores = ([base] if base else []) + [PackagedModelStore()]
            registry = ModelRegistry(stores, settings.model_cache_dir)  # type: ignore[arg-type]
            if base and config.base_version is None:
                config = TrainConfig(**{**config.__dict__, "base_version": "base"})
            result = train(config, settings, registry=registry, store=None, output_dir=model_dir)
        print(json.dumps({"version": result.version, "approved": result.approved, "metrics": result.metrics}))
        return 0
    except Exception as error:  # noqa: BLE001 - SageMaker shows the failure file as the job's reason
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "failure").write_text(f"{type(error).__name__}: {error}"[:1024], encoding="utf-8")
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())
