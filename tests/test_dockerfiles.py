"""The Dockerfiles cannot be built here (no Docker engine), so check what can be checked without one."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

from tests.conftest import REPO

DOCKERFILES = ["bots/Dockerfile", "batch_jobs/Dockerfile", "training/Dockerfile"]


def instructions(path: str) -> list[tuple[str, str]]:
    text = (REPO / path).read_text().replace("\\\n", " ")
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in (raw.strip() for raw in text.splitlines())
        if line and not line.startswith("#")
    ]


@pytest.mark.parametrize("path", DOCKERFILES)
def test_dockerfile_is_pinned_non_root_and_copies_what_exists(path):
    steps = instructions(path)
    bases = [args for op, args in steps if op == "FROM"]
    assert bases and all(re.match(r"python:3\.11-slim-bookworm( AS \w+)?$", b) for b in bases), bases
    final_stage = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM"):]
    users = [args for op, args in final_stage if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    for op, args in steps:
        if op == "COPY" and not args.startswith("--from"):
            *sources, _ = args.split()
            for source in sources:
                assert (REPO / source).exists(), f"{path}: COPY {source} names nothing in the repo"
    entry = [json.loads(args) for op, args in final_stage if op in ("ENTRYPOINT", "CMD")]
    assert entry, f"{path} says what it runs"
    command = entry[-1]
    if command[:2] == ["python", "-m"]:
        assert importlib.util.find_spec(command[2]) is not None, command
    else:
        assert (REPO / "training" / command[0]).exists(), command


def test_images_that_run_car_model_bake_its_backbone():
    for path in ("bots/Dockerfile", "batch_jobs/Dockerfile"):
        steps = instructions(path)
        assert any(op == "RUN" and "spotbot-image models" in args for op, args in steps), path
        assert any(op == "COPY" and args.startswith("--from=models /models/car-model") for op, args in steps), path
    assert "spotbot models build" in (REPO / SETUP_SCRIPT).read_text()


SETUP_SCRIPT = "docker/spotbot-image.sh"


@pytest.mark.parametrize("path", DOCKERFILES)
def test_each_image_takes_its_setup_from_the_one_shared_script(path):
    steps = instructions(path)
    stages = [i for i, (op, _) in enumerate(steps) if op == "FROM"]
    for start, end in zip(stages, [*stages[1:], len(steps)]):
        stage = steps[start:end]
        assert ("COPY", f"{SETUP_SCRIPT} /usr/local/bin/spotbot-image") in stage, (path, stage[0])
        runs = " ".join(args for op, args in stage if op == "RUN")
        # apt, pip and useradd are said once, in the script
        assert not any(word in runs for word in ("apt-get", "pip install", "useradd")), (path, runs)


def test_the_setup_script_takes_the_torch_pin_from_pyproject():
    import tomllib

    script = (REPO / SETUP_SCRIPT).read_text()
    assert not re.search(r"torch==[0-9]", script) and '["optional-dependencies"]["export"]' in script
    export = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["export"]
    assert any(requirement.startswith("torch==") for requirement in export)


def test_the_worker_image_installs_what_decoding_documents_and_video_needs():
    """The Spot worker reads PDFs and video (the `media` extra); the Lambda layer never does."""
    import tomllib

    worker = (REPO / "batch_jobs" / "Dockerfile").read_text(encoding="utf-8")
    (line,) = [line for line in worker.splitlines() if line.startswith("RUN spotbot-image install ")]
    extras = set(line.split()[3].split(","))
    assert {"cloud", "media"} <= extras
    optional = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert {"av", "pypdfium2"} <= {spec.split("==")[0] for spec in optional["media"]}
    layer = (REPO / "stacks" / "lambda-requirements.txt").read_text(encoding="utf-8").lower()
    assert "pypdfium2" not in layer and "\nav==" not in layer
