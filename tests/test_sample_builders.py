"""The drawing helpers of samples/build_samples.py (a script, loaded from its file): a sign's blank and its frame."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "samples" / "build_samples.py"


@pytest.fixture(scope="module")
def samples():
    spec = importlib.util.spec_from_file_location("build_samples", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_a_board_is_its_background_with_the_frame_inset_from_the_edge(samples):
    image, _ = samples.board((40, 20), background=(1, 2, 3), frame=samples.Frame(3, (200, 0, 0), width=1))
    assert image.size == (40, 20)
    assert image.getpixel((0, 0)) == image.getpixel((20, 10)) == (1, 2, 3)
    assert image.getpixel((3, 3)) == image.getpixel((36, 16)) == image.getpixel((20, 3)) == (200, 0, 0)
    rounded, _ = samples.board((40, 20), background=(1, 2, 3), frame=samples.Frame(0, (200, 0, 0), width=1, radius=6))
    assert rounded.getpixel((0, 0)) == (1, 2, 3) and rounded.getpixel((20, 0)) == (200, 0, 0)  # the corner is cut


def test_a_gradient_board_runs_from_its_top_colour_to_its_bottom_one(samples):
    image, _ = samples.board((4, 11), gradient=((0, 0, 0), (100, 200, 250)))
    assert image.getpixel((0, 0)) == (0, 0, 0) and image.getpixel((3, 10)) == (100, 200, 250)
