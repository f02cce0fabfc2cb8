from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from typing import Any

import pytest

from spotbot.adapters.sqlite.index import SQLiteTagIndex
from spotbot.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
# the sentiment version the package makes current (its approval rule passed); test_sentiment_v2 checks the registry agrees
CURRENT_SENTIMENT = "v3"
# the handlers the stack deploys as zip functions on the shared layer: every lambdas/<name>/handler.py but
# the watch consumer's, which runs from the bots' serving image (stacks/watches.py)
IMAGE_LAMBDAS = ("watch_consumer",)
LAYER_LAMBDAS = tuple(sorted(p.parent.name for p in (REPO / "lambdas").glob("*/handler.py") if p.parent.name not in IMAGE_LAMBDAS))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", workers=2)


@pytest.fixture
def index(settings: Settings):
    db = SQLiteTagIndex(settings.index_path)
    yield db
    db.close()


@pytest.fixture(scope="session")
def expected() -> dict:
    return json.loads((SAMPLES / "expected.json").read_text(encoding="utf-8"))


def spotbot_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOTBOT_")}
    env.update(SPOTBOT_HOME=str(home), PYTHONPATH=str(REPO), COLUMNS="200", **extra)
    return env


def run_spotbot(home: Path, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    """Runs the real `spotbot` command, as a user would."""
    result = subprocess.run(
        [sys.executable, "-m", "spotbot", *args],
        cwd=REPO,
        env=spotbot_env(home, **env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"spotbot {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def wait_for_done(home: Path, at_least: int, timeout: float = 60, poll: float = 0.1) -> int:
    """Waits until a local job in `home` has at least `at_least` tasks DONE; returns how many it has."""
    db, deadline, done = home / "index.sqlite3", time.monotonic() + timeout, 0
    while time.monotonic() < deadline and done < at_least:
        time.sleep(poll)
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
                done = conn.execute("SELECT COUNT(*) FROM tasks WHERE status = 'DONE'").fetchone()[0]
        except sqlite3.OperationalError:
            continue  # the index or its schema is not there yet
    assert done >= at_least, "the job never got going"
    return done


def table_columns(output: str) -> list[str]:
    """A Rich table's text column by column, folded lines joined and spaces dropped: a long value (a
    path under a deep temporary folder, say) reads whole however narrow the table had to be."""
    columns: list[str] = []
    for line in output.splitlines():
        for i, cell in enumerate(line.split("│")[1:-1]):
            if i == len(columns):
                columns.append("")
            columns[i] += cell.replace(" ", "")
    return columns


def read_parts(job_dir: Path) -> list[dict]:
    records = []
    for part in sorted(job_dir.glob("part-*.jsonl")):
        records.extend(json.loads(line) for line in part.read_text(encoding="utf-8").splitlines())
    return records


@pytest.fixture(scope="session")
def car_models(tmp_path_factory) -> Path:
    """A model store holding the car-model baseline (the backbone exported once per session)."""
    pytest.importorskip("torch", reason="exporting the car-model backbone needs the `export` extra")
    from spotbot.adapters.model_stores import LocalModelStore
    from training.baselines import build_car_model_baseline

    root = tmp_path_factory.mktemp("car-models")
    build_car_model_baseline(LocalModelStore(root))
    return root


@pytest.fixture(scope="session")
def osmem_server():
    """Overrides the osmem plugin's fixture: the same OpenSearch-compatible server, without Japanese analysis."""
    from osmem_server import OsmemServer

    server = OsmemServer.start(japanese=False)
    yield server
    server.close()


# what boto3 signs with against moto: never real credentials
MOTO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def start_moto_server(port: int = 0) -> tuple[Any, str]:
    """A moto server on loopback, started (port 0: a free one): the server, and its URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


@pytest.fixture(scope="module")
def moto_url():
    """A moto server on loopback for this module: what other processes (workers, servers) can reach too."""
    server, url = start_moto_server()
    yield url
    server.stop()


@pytest.fixture
def opensearch_index(osmem_clone):
    """The OpenSearch tag index on a fresh osmem clone, indices created, without SigV4 and with quick retries."""
    from spotbot.adapters.opensearch.index import OpenSearchTagIndex

    db = OpenSearchTagIndex.connect(osmem_clone.url, sigv4=False, retry_base_s=0.001)
    db.ensure_indices()
    yield db
    db.close()
