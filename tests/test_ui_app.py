"""The web app over HTTP, without a browser: what it refuses to read or accept, escaping, the thumbnail cache, paging."""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.error
import urllib.request

import pytest
from PIL import Image

from spotbot.domain import AssetRef, Job, Tag, TagRecord, TaskStatus, task_id
from spotbot.entrypoints.ui import UiOptions, build_app
from spotbot.ports import TaskOutcome
from spotbot.services.planning import add_assets
from spotbot.settings import Settings


def put(index, job: Job, records: list[TagRecord]) -> None:
    index.save_job(job)
    add_assets(index, job.job_id, [AssetRef(uri=r.asset, etag=r.etag, size=1) for r in records], shard_size=1000)
    index.record_outcomes(records, [TaskOutcome(r.asset, TaskStatus.DONE) for r in records], job.job_id)


@contextlib.contextmanager
def serving(settings: Settings):
    import uvicorn

    web, closers = build_app(settings, UiOptions(reviewer="tester"))
    server = uvicorn.Server(uvicorn.Config(web, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.02)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        for closer in closers:
            closer.close()


def get(url: str, headers: dict[str, str] | None = None, data: bytes | None = None, method: str = "GET"):
    request = urllib.request.Request(url, headers=headers or {}, data=data, method=method)
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def site(tmp_path, settings, index):
    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (800, 600), (200, 30, 30)).save(src / "photo.jpg")
    (tmp_path / "secret.jpg").write_bytes((src / "photo.jpg").read_bytes())
    records = [
        TagRecord(job_id="j", bot="car-model", model_version="v1", asset=str(src / "photo.jpg"), etag="e1",
                  tags=[Tag(label="vehicle", score=0.4)]),
        # a tampered index: a record pointing outside its job's source
        TagRecord(job_id="j", bot="car-model", model_version="v1", asset=str(tmp_path / "secret.jpg"), etag="e1",
                  tags=[Tag(label="vehicle", score=0.4)]),
        TagRecord(job_id="j", bot="sentiment", model_version="v1", asset=str(src / "note.txt"), etag="e1",
                  tags=[Tag(label="positive", score=0.9)], text='<script>alert("x")</script> 欢迎光临'),
    ]
    put(index, Job(job_id="j", bot="car-model", source=str(src), output=str(tmp_path / "out"), workers=1), records)
    with serving(settings) as url:
        yield url, src, tmp_path


def test_thumbnails_are_small_cached_and_only_of_assets_in_the_index(site):
    url, src, root = site
    photo = task_id("j", str(src / "photo.jpg"))
    status, headers, body = get(f"{url}/thumb/{photo}")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    from io import BytesIO

    assert Image.open(BytesIO(body)).size == (320, 240)
    (src / "photo.jpg").unlink()
    assert get(f"{url}/thumb/{photo}")[0] == 200  # from the cache
    status, _, body = get(f"{url}/thumb/{task_id('j', str(root / 'secret.jpg'))}")
    assert status == 404 and b"not under its job's source" in body
    assert get(f"{url}/thumb/{'0' * 32}")[0] == 404
    assert get(f"{url}/thumb/..%2F..%2Fetc%2Fpasswd")[0] in (400, 404)
    status, _, body = get(f"{url}/thumb/{task_id('j', str(src / 'note.txt'))}")
    assert status == 404 and b"root:" not in body


def test_pages_escape_what_bots_and_files_wrote_and_forbid_inline_script(site):
    url, _, _ = site
    status, headers, body = get(f"{url}/search?q=欢迎光临".replace("欢迎光临", "%E6%AC%A2%E8%BF%8E%E5%85%89%E4%B8%B4"))
    page = body.decode()
    assert status == 200 and "script-src 'self'" in headers["content-security-policy"]
    assert '&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;' in page and '<script>alert' not in page
    assert "<mark>欢迎光临</mark>" in page
    assert get(f"{url}/search?q=" + "x" * 501)[0] == 400


def test_a_foreign_host_or_a_form_post_is_refused(site):
    url, src, _ = site
    assert get(f"{url}/search", headers={"Host": "evil.example"})[0] == 400  # DNS rebinding
    photo = task_id("j", str(src / "photo.jpg"))
    decision = json.dumps({"tag_index": 0, "action": "accept"}).encode()
    status, _, _ = get(f"{url}/api/reviews/{photo}", data=decision, method="POST", headers={"Content-Type": "text/plain"})
    assert status == 415  # what a form on another site could send
    assert json.loads(get(f"{url}/api/reviews/{photo}")[2]) == []
    status, _, body = get(f"{url}/api/reviews/{photo}", data=b"[1]", method="POST", headers={"Content-Type": "application/json"})
    assert status == 400 and json.loads(body) == {"error": "the body is not a JSON object"}
    status, _, body = get(f"{url}/api/reviews/{photo}", data=json.dumps({"tag_index": "first", "action": "accept"}).encode(),
                          method="POST", headers={"Content-Type": "application/json"})
    assert status == 400 and "tag_index: Input should be a valid integer" in json.loads(body)["error"]
    status, _, body = get(f"{url}/api/reviews/{photo}", data=decision, method="POST", headers={"Content-Type": "application/json"})
    assert status == 201 and json.loads(body)["reviewer"] == "tester"
    assert [r["action"] for r in json.loads(get(f"{url}/api/reviews/{photo}")[2])] == ["accept"]


def test_search_pages_through_the_results(tmp_path, settings, index):
    records = [TagRecord(job_id="big", bot="sentiment", model_version="v1", asset=f"/t/{i:02}.txt", etag="e",
                         tags=[Tag(label="positive", score=0.9)], text=f"text {i}") for i in range(30)]
    put(index, Job(job_id="big", bot="sentiment", source="/t", output="/o", workers=1), records)
    with serving(settings) as url:
        first = get(f"{url}/search?job=big")[2].decode()
        assert first.count('class="card"') == 24 and 'rel="next"' in first
        next_href = first.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
        second = get(url + next_href)[2].decode()
        assert second.count('class="card"') == 6 and 'rel="next"' not in second and "First page" in second
        jobs = json.loads(get(f"{url}/api/jobs")[2])
        assert jobs[0]["job_id"] == "big" and jobs[0]["counts"]["done"] == 30
        assert get(f"{url}/jobs/nope")[0] == 404
        assert get(f"{url}/review?bot=sentiment&threshold=abc")[0] == 400
