"""The built-in bots in process, and the bot registry."""

import json

import pytest
from PIL import Image, ImageDraw, ImageFont

from bots.scene_text import SceneTextBot
from bots.sentiment import SentimentBot
from spotbot.bot import UnknownBotError, resolve_bot
from tests.conftest import SAMPLES


def test_registry_resolves_builtins_and_user_bots():
    assert resolve_bot("sentiment") is SentimentBot
    assert resolve_bot("tests.support_bots:LengthBot").name == "length"
    with pytest.raises(UnknownBotError, match="unknown bot 'ocr'"):
        resolve_bot("ocr")
    with pytest.raises(UnknownBotError, match="cannot import module 'no_such_module'"):
        resolve_bot("no_such_module:Bot")
    with pytest.raises(UnknownBotError, match="not a subclass of spotbot.bot.Bot"):
        resolve_bot("pathlib:Path")


def test_scene_text_reads_a_line_and_nothing_from_a_blank_image():
    bot = SceneTextBot()
    bot.load(threads=1)
    image = Image.new("RGB", (360, 80), "white")
    font = ImageFont.load_default(size=40)  # Pillow's own scalable font: no system font needed
    ImageDraw.Draw(image).text((10, 15), "HELLO 2026", fill="black", font=font)
    lines, blank = bot.predict([image, Image.new("RGB", (300, 200), "white")])
    assert [tag.text.replace(" ", "") for tag in lines] == ["HELLO2026"]
    assert blank == []
    with pytest.raises(ValueError, match="takes no model dir"):
        SceneTextBot().load(SAMPLES)


def test_sentiment_loads_a_versioned_model_dir(tmp_path):
    from snownlp import sentiment

    baseline = SentimentBot()
    baseline.load()
    assert baseline.predict(["这个手机非常好用，我很喜欢"])[0][0].label == "positive"

    # a user's own snownlp model that has learned the opposite
    model = sentiment.Sentiment()
    model.train(neg_docs=["非常好用，很喜欢", "很好，满意"] * 5, pos_docs=["太差了，很失望", "坏了，退货"] * 5)
    model.save(str(tmp_path / "sentiment.marshal"))
    (tmp_path / "model.json").write_text(json.dumps({"format": "snownlp", "version": "reversed-1"}))
    custom = SentimentBot()
    custom.load(tmp_path)
    assert custom.model_version == "reversed-1"
    assert custom.predict(["这个手机非常好用，我很喜欢"])[0][0].label == "negative"

    (tmp_path / "model.json").write_text(json.dumps({"format": "bayes-2"}))
    with pytest.raises(ValueError, match="cannot load model format 'bayes-2'"):
        SentimentBot().load(tmp_path)
    with pytest.raises(FileNotFoundError, match="has no model.json"):
        SentimentBot().load(tmp_path / "nowhere")


def test_each_built_in_bot_class_takes_its_metadata_from_its_catalogue_line():
    """The Lambdas read the catalogue without importing bots; the classes read their line of it."""
    from spotbot.bot import BUILTIN_CATALOGUE, Bot

    for name, entry in BUILTIN_CATALOGUE.items():
        bot_class = resolve_bot(name)
        assert bot_class.name == name and bot_class.file_types is entry.file_types
        assert (bot_class.input_kind, bot_class.description) == (entry.input_kind, entry.description)
    with pytest.raises(KeyError, match="no-such-bot"):
        type("Stray", (Bot,), {}, builtin="no-such-bot")

