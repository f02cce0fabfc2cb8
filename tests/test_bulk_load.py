"""Task documents bulk-load with refresh off and no replicas during a scan; the settings come back after."""

from __future__ import annotations

import pytest

from spotbot.adapters.opensearch.index import OpenSearchTagIndex


@pytest.fixture
def index(osmem_clone):
    db = OpenSearchTagIndex.connect(osmem_clone.url, sigv4=False, prefix="bulkload")
    db.ensure_indices()
    yield db
    db.close()


def settings_of(db: OpenSearchTagIndex) -> dict:
    return next(iter(db.client.indices.get_settings(index=db.tasks_index).values()))["settings"]["index"]


def test_bulk_load_switches_refresh_and_replicas_off_and_restores_them(index):
    index.client.indices.put_settings(index=index.tasks_index, body={"index": {"refresh_interval": "5s", "number_of_replicas": 1}})
    saved = index.begin_bulk_load()
    during = settings_of(index)
    assert str(during["refresh_interval"]) == "-1" and int(during["number_of_replicas"]) == 0
    # a scan that finds the index loading (another scan, or one that failed mid-way) restores the defaults after
    assert index.begin_bulk_load() == {"refresh_interval": "1s", "number_of_replicas": 1}
    index.end_bulk_load(saved)
    after = settings_of(index)
    assert str(after["refresh_interval"]) == "5s" and int(after["number_of_replicas"]) == 1
