"""The web UI in a real headless Chromium, driven by Selenium, against a real `spotbot ui` process.

Skipped, saying why, only where Chromium or its driver is not installed (`make test` installs them with
apt-get when it runs as root).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from spotbot.adapters.sqlite.index import SQLiteTagIndex
from spotbot.adapters.sqlite.reviews import SQLiteReviewStore
from spotbot.domain import AssetRef, Job, JobStatus, Tag, TagRecord, TaskStatus, task_id
from spotbot.ports import TaskOutcome
from spotbot.services.planning import add_assets
from spotbot.domain.reviews import Decision
from spotbot.services.reviews import ReviewService
from tests.conftest import REPO, read_parts, run_spotbot, spotbot_env
from tests.test_training import write_topics

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install -e '.[test]'")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(f"{CHROMIUM} or {CHROMEDRIVER} is missing: apt-get install chromium chromium-driver", allow_module_level=True)

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SIGN_SIZE = (640, 480)
SIGN_LINES = [("人民路", 0.99, [[40, 60], [300, 60], [300, 130], [40, 130]]),
              ("RENMIN RD", 0.62, [[60, 300], [580, 300], [580, 360], [60, 360]])]
HOSTILE_NAME = "<img src=x onerror=window.__pwned=1>.png"
HOSTILE_LINE = '</title><script>window.__pwned=2</script><img src=x onerror="window.__pwned=3">'
HOSTILE_TEXT = "<script>window.__pwned=4</script>火锅 \"' onmouseover=window.__pwned=5"


def _record(job: str, bot: str, asset: str, tags: list[Tag], text: str | None = None) -> TagRecord:
    return TagRecord(job_id=job, bot=bot, model_version="v1" if bot != "scene-text" else "ocr-1", asset=asset, etag="e1",
                     tags=tags, text=text)


def _put(index: SQLiteTagIndex, job: Job, records: list[TagRecord], failed: dict[str, str] | None = None) -> None:
    index.save_job(job)
    refs = [AssetRef(uri=r.asset, etag=r.etag, size=1) for r in records] + [AssetRef(uri=a, etag="e1", size=1) for a in failed or {}]
    add_assets(index, job.job_id, refs, shard_size=1000)
    outcomes = [TaskOutcome(r.asset, TaskStatus.DONE) for r in records]
    outcomes += [TaskOutcome(asset, TaskStatus.FAILED, error) for asset, error in (failed or {}).items()]
    index.record_outcomes(records, outcomes, job.job_id)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An index with a sign photo (known boxes), hostile names and text, and 60 mislabelled topic texts."""
    root = tmp_path_factory.mktemp("ui")
    home, signs, topics = root / "home", root / "signs", write_topics(root / "topics", per_label=30)
    signs.mkdir()
    image = Image.new("RGB", SIGN_SIZE, (20, 70, 160))
    draw = ImageDraw.Draw(image)
    for _, _, box in SIGN_LINES:
        draw.rectangle([box[0][0], box[0][1], box[2][0], box[2][1]], outline=(255, 255, 255), width=3)
    image.save(signs / "sign.png")
    shutil.copy(signs / "sign.png", signs / HOSTILE_NAME)
    index = SQLiteTagIndex(home / "index.sqlite3")
    sign_tags = [Tag(label="text", score=s, text=t, box=b) for t, s, b in SIGN_LINES]
    hostile_tags = [Tag(label="text", score=0.5, text=HOSTILE_LINE, box=[[10, 10], [200, 10], [200, 50], [10, 50]])]
    _put(index, Job(job_id="signs", bot="scene-text", source=str(signs), output=str(root / "out"), workers=1, status=JobStatus.PARTIAL),
         [_record("signs", "scene-text", str(signs / "sign.png"), sign_tags),
          _record("signs", "scene-text", str(signs / HOSTILE_NAME), hostile_tags)],
         failed={str(signs / "broken.png"): "corrupt or truncated image: <b>bad</b>"})
    texts = sorted(topics.rglob("*.txt"))
    records = [_record("topics", "sentiment", str(p), [Tag(label="positive" if i % 2 else "negative", score=0.55)],
                       text=p.read_text(encoding="utf-8")) for i, p in enumerate(texts)]
    records.append(_record("topics", "sentiment", str(topics / "food" / "hostile.txt"), [Tag(label="positive", score=0.99)],
                           text=HOSTILE_TEXT))
    _put(index, Job(job_id="topics", bot="sentiment", source=str(topics), output=str(root / "out"), workers=1), records)
    index.close()

    # someone reviewed all but three topic texts already; the browser does the last three
    store = SQLiteReviewStore(home / "index.sqlite3")
    service = ReviewService(store)
    for path in texts[3:]:
        service.decide(task_id("topics", str(path)), Decision(tag_index=0, action="correct", label=path.parent.name, reason="low_confidence"), "earlier")
    store.close()

    server = subprocess.Popen([sys.executable, "-m", "spotbot", "ui", "--port", "0", "--reviewer", "browser-test"],
                              cwd=REPO, env=spotbot_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    if not line.startswith("Spot Tagging Bot UI: http://127.0.0.1:"):
        server.kill()
        raise AssertionError(f"spotbot ui did not start: {line}{server.stderr.read()}")
    yield {"url": line.split(": ", 1)[1].strip().rstrip("/"), "home": home, "root": root, "topics": topics}
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}", "--window-size=1280,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=webdriver.ChromeService(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def _card(browser, name: str):
    return next(card for card in browser.find_elements(By.CSS_SELECTOR, ".card")
                if card.find_element(By.CSS_SELECTOR, ".name").text == name)


def _loaded(browser, img) -> None:
    WebDriverWait(browser, 10).until(lambda _: browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img))


def test_the_gallery_draws_each_ocr_box_over_its_text(world, browser):
    browser.get(f"{world['url']}/search?job=signs")
    card = _card(browser, "sign.png")
    img = card.find_element(By.TAG_NAME, "img")
    _loaded(browser, img)
    # a thumbnail, not the original, went to the browser
    assert browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img) == [320, 240]
    frame = img.rect
    scale = min(frame["width"] / SIGN_SIZE[0], frame["height"] / SIGN_SIZE[1])
    left = frame["x"] + (frame["width"] - SIGN_SIZE[0] * scale) / 2
    top = frame["y"] + (frame["height"] - SIGN_SIZE[1] * scale) / 2
    polygons = card.find_elements(By.CSS_SELECTOR, "svg.boxes polygon")
    assert len(polygons) == len(SIGN_LINES)
    for polygon, (_, _, box) in zip(polygons, SIGN_LINES):
        drawn = browser.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]", polygon)
        expected = [left + box[0][0] * scale, top + box[0][1] * scale, left + box[2][0] * scale, top + box[2][1] * scale]
        assert drawn == pytest.approx(expected, abs=1.5), (drawn, expected)

    line = card.find_elements(By.CSS_SELECTOR, "ol.lines li")[1]
    assert "RENMIN RD" in line.text and "0.62" in line.text
    ActionChains(browser).move_to_element(line).perform()
    assert "hl" in polygons[1].get_attribute("class") and "hl" not in polygons[0].get_attribute("class")


def test_hostile_file_names_and_ocr_text_are_shown_as_text_never_run(world, browser):
    for page in ("/search?job=signs", "/search?q=%E7%81%AB%E9%94%85", "/review?bot=scene-text", "/jobs/signs"):
        browser.get(world["url"] + page)
        for img in browser.find_elements(By.CSS_SELECTOR, ".thumb img"):
            _loaded(browser, img)
        for element in browser.find_elements(By.CSS_SELECTOR, "[data-line]"):
            if element.is_displayed():
                ActionChains(browser).move_to_element(element).perform()
        assert browser.execute_script("return window.__pwned") is None, page
        scripts = [s.get_attribute("src") for s in browser.find_elements(By.TAG_NAME, "script")]
        assert scripts == [f"{world['url']}/static/ui.js"], page
        assert browser.execute_script("return document.querySelectorAll('[onerror], [onmouseover]').length") == 0, page
    browser.get(f"{world['url']}/search?job=signs")
    hostile = _card(browser, HOSTILE_NAME)  # the name shown as it is
    assert HOSTILE_LINE in hostile.find_element(By.CSS_SELECTOR, "ol.lines").text
    browser.get(f"{world['url']}/search?q=%E7%81%AB%E9%94%85")  # 火锅
    text = _card(browser, "hostile.txt").find_element(By.CSS_SELECTOR, "blockquote")
    assert "ript>window.__pwned=4</script>火锅" in text.text  # the snippet around the match, as text
    assert text.find_element(By.TAG_NAME, "mark").text == "火锅"


def test_the_jobs_pages_show_counts_failures_and_throughput(world, browser):
    browser.get(f"{world['url']}/jobs")
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-job="signs"]')
    cells = {c.get_attribute("data-field"): c.text for c in row.find_elements(By.CSS_SELECTOR, "td[data-field]")}
    assert (cells["done"], cells["failed"], cells["pending"]) == ("2", "1", "0")
    index = SQLiteTagIndex(world["home"] / "index.sqlite3")  # a worker finishes one more asset while the page is open
    add_assets(index, "signs", [AssetRef(uri=str(world["root"] / "signs" / "late.png"), etag="e1", size=1)], shard_size=1000)
    index.record_outcomes([], [TaskOutcome(str(world["root"] / "signs" / "late.png"), TaskStatus.FAILED, "late")], "signs")
    index.close()
    WebDriverWait(browser, 10).until(lambda _: row.find_element(By.CSS_SELECTOR, 'td[data-field="failed"]').text == "2")
    browser.get(f"{world['url']}/jobs/signs")
    assert "corrupt or truncated image: <b>bad</b>" in browser.find_element(By.TAG_NAME, "table").text
    assert browser.find_elements(By.CSS_SELECTOR, ".chart svg rect")
    assert "Done / failed / pending" in browser.page_source and "2 / 2 / 0 of 4" in browser.find_element(By.CSS_SELECTOR, ".facts").text


UNLABELLED = """return [...document.querySelectorAll('input, select, button, img')].filter(el =>
    !(el.closest('label') || el.getAttribute('aria-label') || (el.tagName === 'IMG' ? el.alt : el.textContent.trim()))
).map(el => el.outerHTML)"""


def test_the_pages_fit_a_narrow_window_and_every_control_is_named(world, browser):
    browser.set_window_size(360, 800)
    try:
        for page in ("/search?job=signs", "/review?bot=sentiment", "/review?bot=my-own-bot", "/jobs/signs", "/jobs"):
            browser.get(world["url"] + page)
            width = browser.execute_script("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            assert width[0] <= width[1], (page, width)
            assert browser.execute_script(UNLABELLED) == [], page  # a screen reader can name each control and image
        browser.get(f"{world['url']}/review?bot=my-own-bot")
        assert "Nothing to review for my-own-bot below 0.8." in browser.find_element(By.CSS_SELECTOR, ".empty").text
        assert browser.find_element(By.CSS_SELECTOR, "select[name=bot] option:checked").text == "my-own-bot"
    finally:
        browser.set_window_size(1280, 1000)


def test_review_by_keyboard_export_train_and_the_next_job_uses_the_new_version(world, browser, tmp_path):
    browser.get(f"{world['url']}/review?bot=sentiment")
    items = browser.find_elements(By.CSS_SELECTOR, "#queue .item")
    # the three nobody reviewed, and the confident hostile text drawn as the random sample
    assert sorted(item.get_attribute("data-reason") for item in items) == ["low_confidence"] * 3 + ["sample"]
    started = time.perf_counter()
    for _ in items:
        current = browser.find_element(By.CSS_SELECTOR, "#queue .item.current")
        assert browser.switch_to.active_element == current  # focus follows the queue: no mouse needed
        asset = Path(current.find_element(By.CSS_SELECTOR, ".name").get_attribute("title"))
        if asset.name == "hostile.txt":  # "positive" is wrong, and there is no label to give it
            ActionChains(browser).send_keys("r").perform()
            WebDriverWait(browser, 10).until(lambda _: current.get_attribute("data-decided") == "reject")
            continue
        ActionChains(browser).send_keys("c").perform()
        field = current.find_element(By.CSS_SELECTOR, 'form[data-for="correct"] input')
        assert browser.switch_to.active_element == field
        field.send_keys(asset.parent.name + "\n")
        WebDriverWait(browser, 10).until(lambda _: current.get_attribute("data-decided") == "correct")
    elapsed = time.perf_counter() - started
    WebDriverWait(browser, 5).until(lambda _: browser.find_element(By.ID, "done-all").is_displayed())
    print(f"\nreview decisions per minute by keyboard (3 labels typed, 1 reject): {len(items) / elapsed * 60:.0f}")

    store = SQLiteReviewStore(world["home"] / "index.sqlite3")
    mine = [r for r in store.reviews("sentiment") if r.reviewer == "browser-test"]
    store.close()
    corrected = [r for r in mine if r.action == "correct"]
    assert len(mine) == 4 and [r.asset for r in mine if r.action == "reject"] == [str(world["topics"] / "food" / "hostile.txt")]
    assert len(corrected) == 3 and all(r.after["label"] == Path(r.asset).parent.name for r in corrected)

    manifest, models = tmp_path / "labels.manifest", tmp_path / "models"
    home = world["home"]
    exported = json.loads(run_spotbot(home, "reviews", "export", "--bot", "sentiment", "--out", str(manifest), "--json").stdout)
    assert exported["lines"] == 60 and exported["labels"] == ["food", "tech"]
    trained = json.loads(run_spotbot(home, "train", "--bot", "sentiment", "--data", str(manifest), "--models", str(models),
                                     "--version", "v-reviewed", "--json").stdout)
    assert trained["approved"], trained["metrics"]
    bots = {b["name"]: b for b in json.loads(run_spotbot(home, "bots", "--models", str(models), "--json").stdout)}
    assert bots["sentiment"]["model_version"] == "v-reviewed"
    new = tmp_path / "new"
    new.mkdir()
    (new / "a.txt").write_text("晚饭的饺子很好吃", encoding="utf-8")
    (new / "b.txt").write_text("这台电脑经常死机", encoding="utf-8")
    job = json.loads(run_spotbot(home, "tag", str(new), "--bot", "sentiment", "--models", str(models),
                                 "--out", str(tmp_path / "out"), "--json").stdout)["job"]
    assert job["model_version"] == "v-reviewed"
    labels = {Path(r["asset"]).name: r["tags"][0]["label"] for r in read_parts(tmp_path / "out" / job["job_id"])}
    assert labels == {"a.txt": "food", "b.txt": "tech"}


def test_scene_text_review_keys_accept_fix_and_reject(world, browser):
    browser.get(f"{world['url']}/review?bot=scene-text")
    items = browser.find_elements(By.CSS_SELECTOR, "#queue .item")
    assert len(items) == 2  # the sign's unsure line, the hostile one
    by_id = {item.get_attribute("data-id"): item for item in items}
    sign = task_id("signs", str(world["root"] / "signs" / "sign.png"))
    assert by_id[sign].get_attribute("data-tag") == "1"  # RENMIN RD, 0.62: the line to check
    focused = by_id[sign].find_elements(By.CSS_SELECTOR, "polygon.focus")
    assert [p.get_attribute("data-line") for p in focused] == ["1"]
    started = time.perf_counter()
    for item in items:
        current = browser.find_element(By.CSS_SELECTOR, "#queue .item.current")
        if current.get_attribute("data-id") == sign:
            ActionChains(browser).send_keys("t").perform()
            field = current.find_element(By.CSS_SELECTOR, 'form[data-for="fix_text"] input')
            assert field.get_attribute("value") == "RENMIN RD"
            field.send_keys(" ROAD\n")
            expected = "fix_text"
        else:
            ActionChains(browser).send_keys("r").perform()
            expected = "reject"
        WebDriverWait(browser, 10).until(lambda _: current.get_attribute("data-decided") == expected)
    print(f"\nreview decisions per minute by keyboard (fix text / reject): {len(items) / (time.perf_counter() - started) * 60:.0f}")
    store = SQLiteReviewStore(world["home"] / "index.sqlite3")
    (fixed,) = store.reviews(record_id=sign)
    store.close()
    assert (fixed.action, fixed.before["text"], fixed.after["text"], fixed.after["box"]) == (
        "fix_text", "RENMIN RD", "RENMIN RD ROAD", SIGN_LINES[1][2])
    browser.get(f"{world['url']}/review?bot=scene-text")
    accuracy = browser.find_element(By.CSS_SELECTOR, "table.accuracy").text
    assert "scene-text ocr-1" in accuracy and "0% (0 / 2)" in accuracy
