"""Documents and videos tagged through the SageMaker serving contract: the worker sends units, not files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from spotbot.adapters.sagemaker import wire
from spotbot.adapters.sagemaker.runtime import SageMakerRuntime
from tests.conftest import read_parts
from tests.media_files import CONTRACT, SLIDES
import pytest

from tests.test_serving import CountingClient, fake_aws, run_shard, sm_client, start_server, stop_server  # noqa: F401 - fake_aws: a fixture

EXPECTED = json.loads((CONTRACT.parents[1] / "expected.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def scene_text_server(tmp_path_factory):
    """scene-text served with its default limits: an A4 page at 150 dpi is 2.2 megapixels."""
    served = start_server(tmp_path_factory.mktemp("scene-text") / "serve.log", "--bot", "scene-text", "--host", "127.0.0.1")
    yield served
    stop_server(served)


def test_pages_and_frames_go_to_the_endpoint_one_unit_per_instance(scene_text_server, tmp_path: Path):
    source = tmp_path / "media"
    source.mkdir()
    shutil.copy(CONTRACT, source / "contract.pdf")
    shutil.copy(SLIDES, source / "slides.mp4")
    client = CountingClient(sm_client(scene_text_server.url))
    runtime = SageMakerRuntime("spotbot-scene-text", "scene-text", client=client)

    result, index, job_dir = run_shard(tmp_path, source, "scene-text", runtime)
    index.close()
    assert (result.done, result.failed) == (2, 0)
    instances = [wire.decode_binary_batch(call["Body"]) for call in client.calls]
    sent = [item for items in instances for item in items]
    # page 2 of the contract and the video's two kept frames; page 1's text layer never leaves the worker
    assert len(sent) == 3 and all(item.startswith(b"\x89PNG") for item in sent)
    assert all(len(call["Body"]) <= runtime.max_payload_bytes for call in client.calls)
    records = {Path(r["asset"]).name: r for r in read_parts(job_dir)}
    page_two = "".join(t["text"] for t in records["contract.pdf"]["tags"] if t["page"] == 2).replace(" ", "")
    assert all(s in page_two for s in EXPECTED["documents"]["documents/contract.pdf"]["2"])
    assert [t["text"] for t in records["contract.pdf"]["tags"] if t["page"] == 1] == EXPECTED["documents"]["documents/contract.pdf"]["1"]
    assert {t["t"] for t in records["slides.mp4"]["tags"]} == {0.0, 6.0}
