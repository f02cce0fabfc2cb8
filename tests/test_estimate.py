"""What a job costs before it runs: the arithmetic, the estimate on the samples, the budget refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spotbot.adapters.local.assets import LocalAssetStore
from spotbot.domain import BadInputError
from spotbot.domain.pricing import BudgetExceededError, JobShape, check_budget, comprehend_units, estimate_cost, spot_hour
from spotbot.services.estimate import (
    Calibration,
    EstimateRequest,
    enforce_budget,
    estimate_job,
    load_bot_profiles,
    load_price_table,
)
from spotbot.services.shard import limits_from
from spotbot.settings import Settings
from tests.conftest import SAMPLES, run_spotbot

TABLE = load_price_table()


def test_the_price_table_is_dated_and_cites_its_sources():
    assert TABLE.date.startswith("2026-") and TABLE.region == "us-east-1"
    for family in ("c6i", "c7i", "m6i", "g5"):
        assert any(name.startswith(family + ".") for name in TABLE.ec2)
    for api in TABLE.managed.values():
        assert api.source in TABLE.sources
    assert TABLE.managed["rekognition-detect-text"].cost(1000) == pytest.approx(1.0)  # ~$1 per 1,000 images


def test_tiered_managed_prices_and_comprehend_units():
    labels = TABLE.managed["rekognition-detect-labels"]
    assert labels.cost(2_000_000) == pytest.approx(1_000_000 * 0.001 + 1_000_000 * 0.0008)
    assert labels.cost(0) == 0
    assert comprehend_units(10) == 3 and comprehend_units(301) == 4  # at least 3 units of 100 characters


def test_spot_is_the_discount_off_on_demand_and_bad_figures_are_refused():
    assert spot_hour(TABLE, "c6i.large", 0.7) == pytest.approx(0.085 * 0.3)
    with pytest.raises(BadInputError, match="spot discount"):
        spot_hour(TABLE, "c6i.large", 1.5)
    with pytest.raises(BadInputError, match="no price for instance type 'x9.huge'"):
        TABLE.instance("x9.huge")


def test_estimate_cost_prices_compute_and_services():
    shape = JobShape(assets=1_000_000, total_bytes=10**11, vcpu_seconds_per_asset=0.36, shards=1000, wall_hours=2.0)
    cost = estimate_cost(shape, TABLE, "rekognition-detect-text")
    assert cost.vcpu_hours == pytest.approx(100.0)
    assert cost.instance_hours == pytest.approx(50.0)  # c6i.large has 2 vCPUs
    assert cost.compute_on_demand.cost == pytest.approx(50 * 0.085)
    assert cost.compute_spot.cost == pytest.approx(50 * 0.085 * (1 - TABLE.spot_discount))
    items = {line.item.split(" (")[0]: line for line in cost.services}
    assert items["S3 GET"].cost == pytest.approx(1000 * 0.0004)
    assert items["S3 LIST"].quantity == pytest.approx(1.0)  # 1,000 pages
    assert cost.total_spot == pytest.approx(cost.compute_spot.cost + sum(line.cost for line in cost.services))
    assert cost.managed[0].cost == pytest.approx(1000.0)  # 1 M images on DetectText at the first tier
    assert cost.managed[0].cost > 10 * cost.total_spot


def test_check_budget():
    check_budget(1.0, None)
    check_budget(1.0, 1.0)
    with pytest.raises(BudgetExceededError, match=r"\$2.50, over its budget of \$1.00"):
        check_budget(2.5, 1.0)


def test_estimate_on_the_sample_reviews_with_a_calibration():
    store = LocalAssetStore(SAMPLES / "reviews")
    files = sorted((SAMPLES / "reviews").glob("*.txt"))
    calibration = Calibration(assets=4, cpu_seconds_per_asset=0.05, wall_seconds_per_asset=0.06, load_seconds=2.0)
    result = estimate_job(EstimateRequest(source=store.source, bot="sentiment"), store, table=TABLE, profiles={},
                          calibration=calibration, limits=limits_from(Settings()))
    assert result.assets == len(files) == 16
    assert result.total_bytes == sum(p.stat().st_size for p in files)
    assert result.seconds_from.startswith("calibrated here")
    workers = result.workers
    expected = (16 * 0.05 / 0.85 + workers * 2.0 * 2) / 3600  # assets' vCPU-seconds and each worker's model load
    assert result.cost.vcpu_hours == pytest.approx(expected)
    managed = result.cost.managed[0]
    assert managed.item == "Amazon Comprehend DetectSentiment"
    assert managed.quantity >= 16 * 3  # read from the texts: at least 3 units each
    as_json = json.loads(json.dumps(result.as_dict()))
    assert as_json["total"]["spot"] == pytest.approx(result.cost.total_spot)
    assert as_json["prices"]["date"] == TABLE.date


def test_estimate_from_a_recorded_profile_and_without_one():
    store = LocalAssetStore(SAMPLES / "scene-text")
    profiles = {"recorded": "2026-12-01", "bots": {"scene-text": {"local": {"cpu_seconds_per_asset": 0.5, "load_seconds": 1.0}}}}
    result = estimate_job(EstimateRequest(source=store.source, bot="scene-text"), store, table=TABLE, profiles=profiles)
    assert result.assets == 10 and result.cpu_seconds_per_asset == 0.5
    assert "profile recorded 2026-12-01" in result.seconds_from
    assert result.cost.managed[0].item.startswith("Amazon Rekognition DetectText")
    with pytest.raises(BadInputError, match="no recorded profile"):
        estimate_job(EstimateRequest(source=store.source, bot="scene-text"), store, table=TABLE, profiles={})


def test_the_budget_refuses_an_estimate_over_it():
    store = LocalAssetStore(SAMPLES / "photos")
    profiles = {"bots": {"car-model": {"local": {"cpu_seconds_per_asset": 1.0}}}}
    over = estimate_job(EstimateRequest(source=store.source, bot="car-model", max_cost=0.000001), store, table=TABLE,
                        profiles=profiles)
    assert not over.within_budget
    with pytest.raises(BudgetExceededError, match="tagging 3 assets with car-model"):
        enforce_budget(over)
    enforce_budget(estimate_job(EstimateRequest(source=store.source, bot="car-model", max_cost=100.0), store, table=TABLE,
                                profiles=profiles))


def test_recorded_profiles_parse_when_present():
    profiles = load_bot_profiles()
    for bot, entries in profiles.get("bots", {}).items():
        for entry in entries.values():
            assert entry["cpu_seconds_per_asset"] > 0, bot


def test_cli_estimate_calibrates_a_bot_and_prints_json(tmp_path: Path):
    result = run_spotbot(tmp_path / "home", "estimate", str(SAMPLES / "reviews"), "--bot", "tests.support_bots:LengthBot",
                         "--json", "--spot-discount", "0.6")
    estimate = json.loads(result.stdout)
    assert estimate["assets"] == 16
    assert estimate["seconds_from"] == "calibrated here on 8 of the assets"
    assert estimate["compute"]["spot"]["unit_price"] == pytest.approx(0.085 * 0.4)
    assert estimate["managed"] == []  # a bot of your own has no managed twin


def test_cli_estimate_and_tag_refuse_over_the_budget(tmp_path: Path):
    home, out = tmp_path / "home", tmp_path / "out"
    refused = run_spotbot(home, "estimate", str(SAMPLES / "reviews"), "--bot", "tests.support_bots:LengthBot",
                          "--max-cost", "0", check=False)
    assert refused.returncode == 2
    assert "over its budget of $0.0000" in refused.stderr.replace("\n", " ")
    assert "total on Spot" in refused.stdout  # the estimate is shown before the refusal
    tag = run_spotbot(home, "tag", str(SAMPLES / "reviews"), "--bot", "tests.support_bots:LengthBot", "--out", str(out),
                      "--max-cost", "0", check=False)
    assert tag.returncode == 2 and "budget" in tag.stderr
    assert not out.exists()  # nothing ran
    bad = run_spotbot(home, "estimate", str(SAMPLES / "reviews"), "--bot", "sentiment", "--instance-type", "x9.huge",
                      check=False)
    assert bad.returncode == 2 and "x9.huge" in bad.stderr


def test_a_local_job_records_its_cpu_seconds_in_the_summary(tmp_path: Path):
    home, out = tmp_path / "home", tmp_path / "out"
    run_spotbot(home, "tag", str(SAMPLES / "reviews"), "--bot", "tests.support_bots:LengthBot", "--out", str(out),
                "--job-id", "costed", "--workers", "1", "--max-cost", "100")
    summary = json.loads((out / "costed" / "_job.json").read_text(encoding="utf-8"))
    cost = summary["cost"]
    assert cost["where"] == "local" and cost["cpu_seconds"] > 0
    assert cost["total_usd"] == pytest.approx(cost["cpu_seconds"] / 3600 * 0.085 * (1 - TABLE.spot_discount) / 2, rel=1e-2)
    status = json.loads(run_spotbot(home, "status", "costed", "--json").stdout)
    assert status["cost"]["cpu_seconds"] == cost["cpu_seconds"]


def test_text_units_count_every_text_past_the_sample_read_for_characters_per_byte(tmp_path: Path):
    from spotbot.services.estimate import TEXT_SAMPLE

    sizes = [50 + 37 * i for i in range(TEXT_SAMPLE * 3 + 1)]  # more texts than the sample, each of its own length
    for i, chars in enumerate(sizes):
        (tmp_path / f"{i:03d}.txt").write_text("好" * chars, encoding="utf-8")  # 3 bytes a character
    store = LocalAssetStore(tmp_path)
    profiles = {"bots": {"sentiment": {"local": {"cpu_seconds_per_asset": 0.1}}}}
    result = estimate_job(EstimateRequest(source=store.source, bot="sentiment"), store, table=TABLE, profiles=profiles,
                          limits=limits_from(Settings()))  # fmt: skip
    assert (result.assets, result.total_bytes) == (len(sizes), 3 * sum(sizes))
    comprehend = next(line for line in result.cost.managed if "Comprehend" in line.item)
    assert comprehend.quantity == sum(comprehend_units(chars) for chars in sizes)
    assert not any("assumed" in note for note in result.notes)  # the ratio was read off the texts
