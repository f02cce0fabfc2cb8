"""The training framework: datasets, heads, versions, and the SageMaker container contract."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from spotbot.settings import Settings
from training.datasets import DatasetError, load_examples
from tests.conftest import REPO, read_parts, run_spotbot, spotbot_env

FOOD = ["牛肉面", "小笼包", "火锅", "烤鸭", "饺子", "米饭", "炒饭", "汤圆"]
TECH = ["手机", "电脑", "耳机", "键盘", "相机", "平板", "显示器", "路由器"]


def write_topics(folder: Path, per_label: int, seed: int = 0) -> Path:
    """Two labels a good text embedding tells apart: remarks on food and on gadgets."""
    rng = random.Random(seed)
    for label, words, frames in (
        ("food", FOOD, ["今天吃的{w}味道很好", "这家店的{w}太咸了", "我最喜欢妈妈做的{w}", "{w}又香又热，分量很足"]),
        ("tech", TECH, ["这台{w}的电池不耐用", "新买的{w}运行很快", "{w}的屏幕很清楚", "{w}连不上网络，需要重启"]),
    ):
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_label):
            text = rng.choice(frames).format(w=rng.choice(words))
            (folder / label / f"{i:03d}.txt").write_text(text, encoding="utf-8")
    return folder


def write_shapes(folder: Path, per_label: int, seed: int = 0) -> Path:
    """Two 'makes' of picture: red boxes on grey, and blue discs on green."""
    rng = random.Random(seed)
    for label in ("Boxster", "Discovery"):
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_label):
            background = (128, 128, 128) if label == "Boxster" else (40, 140, 60)
            image = Image.new("RGB", (256, 192), background)
            draw = ImageDraw.Draw(image)
            x, y, size = rng.randint(10, 120), rng.randint(10, 80), rng.randint(50, 90)
            if label == "Boxster":
                draw.rectangle([x, y, x + size * 1.6, y + size], fill=(200 + rng.randint(0, 55), 20, 20))
            else:
                draw.ellipse([x, y, x + size, y + size], fill=(20, 20, 200 + rng.randint(0, 55)))
            image.save(folder / label / f"{i:03d}.jpg", quality=90)
    return folder


def test_sentiment_fine_tuning_beats_chance_and_becomes_current(tmp_path: Path):
    data = write_topics(tmp_path / "data", per_label=30)
    home, models = tmp_path / "home", tmp_path / "models"
    trained = json.loads(
        run_spotbot(home, "train", "--bot", "sentiment", "--data", str(data), "--models", str(models),
                    "--version", "v7", "--json").stdout
    )
    assert trained["version"] == "v7" and trained["approved"]
    assert trained["metrics"]["accuracy"] >= 0.8 > trained["metrics"]["majority_accuracy"] + 0.2
    assert (models / "sentiment" / "v7" / "model.tar.gz").exists()
    bots = {b["name"]: b for b in json.loads(run_spotbot(home, "bots", "--models", str(models), "--json").stdout)}
    assert bots["sentiment"]["model_version"] == "v7"

    # the next job uses it: topic labels, not positive/negative
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "a.txt").write_text("晚饭的饺子很好吃", encoding="utf-8")
    (tmp_path / "new" / "b.txt").write_text("这台电脑经常死机", encoding="utf-8")
    job = json.loads(run_spotbot(home, "tag", str(tmp_path / "new"), "--bot", "sentiment", "--models", str(models),
                                 "--out", str(tmp_path / "out"), "--json").stdout)["job"]
    assert job["model_version"] == "v7"
    labels = {Path(r["asset"]).name: r["tags"][0]["label"] for r in read_parts(tmp_path / "out" / job["job_id"])}
    assert labels == {"a.txt": "food", "b.txt": "tech"}
    # and snownlp stays selectable
    pinned = json.loads(run_spotbot(home, "tag", str(tmp_path / "new"), "--bot", "sentiment", "--models", str(models),
                                    "--model-version", "snownlp-0.12.3", "--out", str(tmp_path / "out"), "--json").stdout)
    assert pinned["job"]["model_version"] == "snownlp-0.12.3"
    assert {r["tags"][0]["label"] for r in read_parts(tmp_path / "out" / pinned["job"]["job_id"])} <= {"positive", "negative"}


def test_car_model_head_changes_the_bots_labels(tmp_path: Path, car_models: Path):
    models = tmp_path / "models"
    shutil.copytree(car_models, models)
    data = write_shapes(tmp_path / "data", per_label=12)
    home = tmp_path / "home"
    for head in ("logistic", "mlp"):
        trained = json.loads(run_spotbot(home, "train", "--bot", "car-model", "--data", str(data), "--models", str(models),
                                         "--head", head, "--version", f"v1-{head}", "--json").stdout)
        assert trained["metrics"]["accuracy"] == 1.0 and trained["approved"], trained["metrics"]
    listing = json.loads(run_spotbot(home, "models", "list", "--bot", "car-model", "--models", str(models), "--json").stdout)
    assert [(v["version"], v["current"]) for v in listing] == [("v1-mlp", True), ("v1-logistic", False), ("v0-imagenet", False)]

    fresh = write_shapes(tmp_path / "fresh", per_label=2, seed=99)
    out = tmp_path / "out"
    for version in ("v0-imagenet", "v1-logistic", "v1-mlp"):
        run_spotbot(home, "tag", str(fresh), "--bot", "car-model", "--models", str(models), "--model-version", version,
                    "--out", str(out), "--job-id", version.replace(".", "-"))
        records = read_parts(out / version)
        assert len(records) == 4 and all(r["tags"][0]["label"] == "vehicle" for r in records)
        make_model = {Path(r["asset"]).parent.name: [t["label"] for t in r["tags"] if t.get("kind") == "make_model"]
                      for r in records}
        if version == "v0-imagenet":
            assert all(labels == [] for labels in make_model.values())
        else:
            assert all(labels[0] == make for make, labels in make_model.items()), make_model


def test_car_model_trains_into_a_fresh_store_from_the_default_stores_backbone(tmp_path: Path, car_models: Path):
    fresh_store, home = tmp_path / "new-store", tmp_path / "home"  # nothing in it: no backbone
    data = write_shapes(tmp_path / "data", per_label=6)
    trained = json.loads(run_spotbot(home, "train", "--bot", "car-model", "--data", str(data), "--models", str(fresh_store),
                                     "--version", "v1-mine", "--min-accuracy", "0", "--json", SPOTBOT_MODELS=str(car_models)).stdout)
    assert trained["version"] == "v1-mine" and trained["next_job_uses"] == "v1-mine"
    version_dir = fresh_store / "car-model" / "v1-mine"
    assert {p.name for p in (car_models / "car-model" / "v0-imagenet").glob("*.onnx")} <= {p.name for p in version_dir.iterdir()}
    fresh = write_shapes(tmp_path / "fresh", per_label=1, seed=7)
    run_spotbot(home, "tag", str(fresh), "--bot", "car-model", "--models", str(fresh_store), "--out", str(tmp_path / "out"),
                "--job-id", "mine", SPOTBOT_MODELS=str(tmp_path / "elsewhere"))  # the version alone is enough to tag
    records = read_parts(tmp_path / "out" / "mine")
    assert len(records) == 2 and {r["model_version"] for r in records} == {"v1-mine"}


def test_bad_datasets_get_clear_errors(tmp_path: Path):
    settings = Settings(home=tmp_path / "home")

    def error_of(location: Path | str) -> str:
        with pytest.raises(DatasetError) as raised:
            load_examples(str(location), (".txt",), settings)
        return str(raised.value)

    (tmp_path / "empty").mkdir()
    assert "is empty: expected label folders" in error_of(tmp_path / "empty")
    assert "does not exist" in error_of(tmp_path / "missing")
    one = write_topics(tmp_path / "one", per_label=3)
    shutil.rmtree(one / "tech")
    assert "has one label only ('food', 3 examples)" in error_of(one)
    thin = write_topics(tmp_path / "thin", per_label=3)
    for extra in list((thin / "tech").iterdir())[1:]:
        extra.unlink()
    assert "label(s) 'tech' have a single example" in error_of(thin)

    manifest = tmp_path / "set.jsonl"
    manifest.write_text('{"source": "a.txt", "label": "x"}\n{"source": "b.txt"}\n', encoding="utf-8")
    assert "line 2 has no label" in error_of(manifest)
    manifest.write_text('{"source": "a.txt", "label": "x"}\nnot json\n', encoding="utf-8")
    assert "line 2 is not JSON" in error_of(manifest)
    manifest.write_text('{"label": "x"}\n', encoding="utf-8")
    assert "line 1 has no source" in error_of(manifest)

    # Ground Truth's shape: source-ref and <job>-metadata.class-name; sources relative to the manifest
    data = write_topics(tmp_path / "gt", per_label=2)
    lines = [
        {"source-ref": f"{p.parent.name}/{p.name}", "cls": 0, "cls-metadata": {"class-name": p.parent.name}}
        for p in sorted(data.rglob("*.txt"))
    ]
    (data / "output.manifest").write_text("\n".join(json.dumps(line) for line in lines), encoding="utf-8")
    examples = load_examples(str(data / "output.manifest"), (".txt",), settings)
    assert sorted({e.label for e in examples}) == ["food", "tech"] and all(Path(e.source).exists() for e in examples)

    # an unreadable file stops training with its name
    broken = write_topics(tmp_path / "broken", per_label=3)
    (broken / "food" / "gone.txt").symlink_to(tmp_path / "nowhere.txt")
    result = run_spotbot(tmp_path / "home", "train", "--bot", "sentiment", "--data", str(broken),
                         "--models", str(tmp_path / "m"), check=False)
    assert result.returncode == 2 and "cannot read" in result.stderr and "gone.txt" in result.stderr
    scene = run_spotbot(tmp_path / "home", "train", "--bot", "scene-text", "--data", str(data), check=False)
    assert scene.returncode == 2 and "cannot be fine-tuned" in scene.stderr


def test_sagemaker_training_contract(tmp_path: Path):
    """The same entrypoint, run as SageMaker would: channels, hyperparameters, /opt/ml/model, failure file."""
    prefix = tmp_path / "opt-ml"
    write_topics(prefix / "input" / "data" / "train", per_label=12)
    config = prefix / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({"bot": "sentiment", "test_fraction": "0.25", "version": "sm-1"}))
    env = spotbot_env(tmp_path / "home", SM_PREFIX=str(prefix), SM_MODEL_DIR=str(prefix / "model"))
    done = subprocess.run([sys.executable, "-m", "training.sagemaker_entry"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    model_dir = prefix / "model"
    assert sorted(p.name for p in model_dir.iterdir()) == ["config.json", "head.npz", "metrics.json", "model.json"]
    manifest = json.loads((model_dir / "model.json").read_text())
    assert manifest["version"] == "sm-1" and manifest["format"] == "e5-head" and manifest["labels"] == ["food", "tech"]
    assert json.loads((model_dir / "metrics.json").read_text())["test_examples"] == 6

    shutil.rmtree(prefix / "input" / "data" / "train" / "tech")
    failed = subprocess.run([sys.executable, "-m", "training.sagemaker_entry"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert failed.returncode == 1
    assert "has one label only" in (prefix / "output" / "failure").read_text()


def test_trained_head_matches_scikit_learn():
    """The numpy head reproduces the fitted model's probabilities, binary and multi-class, linear and MLP."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    from spotbot.domain.heads import Head
    from training.trainer import TrainConfig, fit_head

    rng = np.random.default_rng(0)
    for classes in (2, 3):
        x = rng.normal(size=(classes * 40, 8)).astype(np.float32) + np.repeat(np.eye(classes, 8) * 5, 40, axis=0)
        y = np.repeat(np.arange(classes), 40)
        for kind in ("logistic", "mlp"):
            head, metrics = fit_head(x, y, [f"l{i}" for i in range(classes)], TrainConfig(bot="b", data="d", head=kind))
            assert metrics["accuracy"] > 0.8
            reference = (LogisticRegression(max_iter=2000, random_state=0) if kind == "logistic" else
                         MLPClassifier(hidden_layer_sizes=(256,), alpha=1e-3, max_iter=500, early_stopping=False,
                                       random_state=0))
            from sklearn.model_selection import train_test_split

            x_train, _, y_train, _ = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
            reference.fit(x_train, y_train)
            np.testing.assert_allclose(head.predict_proba(x), reference.predict_proba(x), atol=1e-4)
            assert isinstance(head, Head)


def test_sagemaker_launch_settings_and_publish(tmp_path: Path, monkeypatch):
    """What training/launch.py asks SageMaker for, and the copy that makes the registry see the result."""
    import boto3
    from moto import mock_aws

    from training.launch import LaunchRequest, publish_artifact, training_job_settings

    request = LaunchRequest(bot="car-model", data="s3://bkt/labelled/", models="s3://bkt/models/", image_uri="img",
                            role="arn:aws:iam::123456789012:role/r", base_model="s3://bkt/models/car-model/v0/model.tar.gz")
    job = training_job_settings(request, "v5")
    assert job["enable_managed_spot_training"] and job["max_wait_time_in_seconds"] >= job["max_runtime_in_seconds"]
    assert job["checkpoint_s3_uri"] == "s3://bkt/models/_checkpoints/car-model/v5"
    assert job["channels"] == {"train": "s3://bkt/labelled/", "model": "s3://bkt/models/car-model/v0/model.tar.gz"}
    assert job["hyperparameters"] == {"bot": "car-model", "version": "v5"}
    assert job["publish_to"] == "s3://bkt/models/car-model/v5/model.tar.gz"
    with pytest.raises(ValueError, match="must be s3://"):
        training_job_settings(LaunchRequest(bot="sentiment", data="/local", models="s3://bkt/m", image_uri="i", role="r"), "v")

    for name, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="bkt")
        s3.put_object(Bucket="bkt", Key="models/_training-output/car-model/job-1/output/model.tar.gz", Body=b"archive")
        publish_artifact("s3://bkt/models/_training-output/car-model/job-1/output/model.tar.gz", job["publish_to"], s3)
        assert s3.get_object(Bucket="bkt", Key="models/car-model/v5/model.tar.gz")["Body"].read() == b"archive"


def test_version_names_are_checked_and_the_newest_trained_becomes_current(tmp_path: Path):
    data = write_topics(tmp_path / "data", per_label=8)
    home, models = tmp_path / "home", tmp_path / "store" / "models"
    escape = run_spotbot(home, "train", "--bot", "sentiment", "--data", str(data), "--models", str(models),
                         "--version", "../../x", check=False)
    assert escape.returncode == 2 and "model version name '../../x' is not valid" in escape.stderr
    assert "Traceback" not in escape.stderr and not (tmp_path / "store" / "x").exists() and not (tmp_path / "x").exists()
    args = ["train", "--bot", "sentiment", "--data", str(data), "--models", str(models), "--min-accuracy", "0", "--json"]
    first = json.loads(run_spotbot(home, *args, "--version", "v7").stdout)
    assert first["next_job_uses"] == "v7"
    # "alpha" sorts before "v7" by name, but it is newer: the next job uses it, and train says so
    second = json.loads(run_spotbot(home, *args, "--version", "alpha").stdout)
    assert second["approved"] and second["next_job_uses"] == "alpha"
    listed = json.loads(run_spotbot(home, "models", "list", "--bot", "sentiment", "--models", str(models), "--json").stdout)
    assert [row["version"] for row in listed][:2] == ["alpha", "v7"] and listed[0]["current"]
