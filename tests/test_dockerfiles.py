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
        assert any(op == "RUN" and "spotbot models build" in args for op, args in steps), path
        assert any(op == "COPY" and args.startswith("--from=models") for op, args in steps), path
