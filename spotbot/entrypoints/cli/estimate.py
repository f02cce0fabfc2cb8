"""`spotbot estimate`: what a job will cost before it runs, beside the managed API that does the same."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from spotbot.domain.pricing import BudgetExceededError, usd as _usd
from spotbot.entrypoints.cli.console import EXIT_BAD_INPUT, err, out

AUTO_SAMPLE = 8  # assets tagged here to calibrate a bot that has no recorded profile


def estimate(
    source: Annotated[str, typer.Argument(help="A local folder, s3://bucket/prefix, or an S3 Inventory …/manifest.json[#prefix]")],
    bot: Annotated[str, typer.Option("--bot", "-b", help="Built-in bot name (see `spotbot bots`) or module:Class")],
    instance_type: Annotated[str, typer.Option("--instance-type", help="EC2 instance type of the Spot workers")] = "c6i.large",
    spot_discount: Annotated[
        Optional[float], typer.Option("--spot-discount", min=0.0, max=0.99, help="Spot price below on demand; default: the price table's")
    ] = None,
    sample: Annotated[
        int, typer.Option("--sample", min=0, help="Calibrate by tagging this many assets here; 0: the bot's recorded profile")
    ] = 0,
    max_cost: Annotated[Optional[float], typer.Option("--max-cost", min=0.0, help="Budget in USD: exit 2 when the estimate is over it")] = None,
    max_vcpus: Annotated[int, typer.Option("--max-vcpus", min=1, help="vCPUs of the Spot environment (the stack's max_vcpus)")] = 256,
    endpoint_instance_type: Annotated[
        Optional[str], typer.Option("--endpoint-instance-type", help="Price a SageMaker endpoint of this type (endpoint-served bots)")
    ] = None,
    models: Annotated[Optional[str], typer.Option("--models", help="Model store for calibration; default $SPOTBOT_MODELS")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables")] = False,
    home: Annotated[Optional[Path], typer.Option("--home", help="Local state folder; default $SPOTBOT_HOME")] = None,
) -> None:
    """Estimate what tagging SOURCE with a bot costs, before anything runs.

    Counts the assets (by listing, or from an S3 Inventory manifest), takes the bot's CPU-seconds per
    asset (its recorded profile, or --sample N assets tagged here), and prices compute on Spot and on
    demand plus S3, Step Functions, Lambda, OpenSearch (and SageMaker) at the dated list prices in the
    repo, beside the managed API that does the same work. Exit 2 when over --max-cost.
    """
    from spotbot.domain import BadInputError
    from spotbot.services.estimate import EstimateRequest, enforce_budget

    request = EstimateRequest(
        source=source, bot=bot, instance_type=instance_type, spot_discount=spot_discount, max_cost=max_cost,
        max_vcpus=max_vcpus, endpoint_instance_type=endpoint_instance_type,
    )  # fmt: skip
    try:
        result = run_estimate(request, sample=sample, models=models, home=home)
    except (BadInputError, FileNotFoundError, ValueError) as error:
        err.print(f"[bold red]error:[/] {error}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if as_json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        print_estimate(result)
    try:
        enforce_budget(result)
    except BudgetExceededError as error:
        err.print(f"[bold red]error:[/] {error}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def run_estimate(request, *, sample: int = 0, models: str | None = None, home: Path | None = None):  # -> JobEstimate
    """Wires the estimate service to this machine: the store, the price table, a calibration when asked or needed."""
    from spotbot.adapters.wiring import open_asset_store
    from spotbot.domain.catalogue import BUILTIN_CATALOGUE
    from spotbot.services.estimate import estimate_job, load_bot_profiles, load_price_table, recorded_profile
    from spotbot.services.shard import limits_from
    from spotbot.settings import Settings

    settings = Settings(home=home) if home else Settings()
    store = open_asset_store(request.source, settings)
    profiles = load_bot_profiles()
    builtin = BUILTIN_CATALOGUE.get(request.bot)
    if sample == 0 and (builtin is None or recorded_profile(profiles, builtin.name, request.instance_type) is None):
        sample = AUTO_SAMPLE
    calibration, file_types = None, None
    if sample or builtin is None:
        calibration, file_types = _calibrate(request.bot, store, sample or AUTO_SAMPLE, settings, models)
    return estimate_job(request, store, table=load_price_table(), profiles=profiles, calibration=calibration,
                        limits=limits_from(settings), file_types=file_types)


def _calibrate(bot: str, store, sample: int, settings, models: str | None):
    """Loads the bot in this process and tags the first `sample` assets of the source."""
    import itertools

    from spotbot.adapters.local.in_process import InProcessRuntime
    from spotbot.adapters.wiring import open_model_registry
    from spotbot.services.bots import resolve_bot
    from spotbot.services.estimate import calibrate
    from spotbot.services.shard import limits_from

    bot_class = resolve_bot(bot)
    registry, _ = open_model_registry(settings, models)
    model = registry.resolve(bot_class.name, None)
    started = time.perf_counter()
    runtime = InProcessRuntime.load(bot, model.path if model else None)
    load_seconds = time.perf_counter() - started
    assets = list(itertools.islice(store.scan(bot_class.file_types), sample))
    if not assets:
        from spotbot.domain import BadInputError

        raise BadInputError(f"no {', '.join(bot_class.file_types)} assets under {store.source}: nothing to estimate")
    return calibrate(store, assets, runtime, limits_from(settings), load_seconds), bot_class.file_types


def refuse_over_budget(source: str, bot: str, max_cost: float, home: Path | None) -> None:
    """`spotbot tag --max-cost`: the estimate first; over the budget, exit 2 before anything is tagged."""
    from spotbot.domain import BadInputError
    from spotbot.services.estimate import EstimateRequest, enforce_budget

    try:
        enforce_budget(run_estimate(EstimateRequest(source=source, bot=bot, max_cost=max_cost), home=home))
    except (BadInputError, FileNotFoundError, ValueError) as error:  # BudgetExceededError is a BadInputError
        err.print(f"[bold red]error:[/] {error}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def print_estimate(result) -> None:
    cost = result.cost
    head = Table(title=f"Estimate: {result.bot} on {result.source}", show_header=False, box=None)
    head.add_row("assets", f"{result.assets:,} ({result.total_bytes / 1e6:,.1f} MB){' from an S3 Inventory' if result.from_inventory else ''}")
    head.add_row("seconds per asset", f"{result.cpu_seconds_per_asset * 1000:,.1f} ms CPU ({result.seconds_from})")
    head.add_row("vCPU-hours", f"{cost.vcpu_hours:,.3f} on {cost.shape.instance_type} ({cost.instance_hours:,.3f} instance-hours)")
    head.add_row("shards / workers", f"{result.shards:,} / {result.workers:,}")
    head.add_row("wall time", f"{result.wall_hours * 60:,.1f} min (scan {result.scan_seconds:,.1f} s)")
    out.print(head)
    table = Table(title=f"Cost (list prices {result.prices['date']}, {result.prices['region']}, {result.prices['table']})")
    for column in ("item", "quantity", "unit", "unit price", "cost"):
        table.add_column(column, justify="right" if column in ("quantity", "unit price", "cost") else "left")
    for line in (cost.compute_spot, cost.compute_on_demand, *cost.services):
        table.add_row(line.item, f"{line.quantity:,.4g}", line.unit, _usd(line.unit_price), _usd(line.cost))
    table.add_row("[bold]total on Spot", "", "", "", f"[bold]{_usd(cost.total_spot)}")
    table.add_row("total on demand", "", "", "", _usd(cost.total_on_demand))
    for line in cost.managed:
        table.add_row(f"[yellow]{line.item} (same assets, list price)", f"{line.quantity:,.0f}", line.unit,
                      f"{_usd(line.unit_price * 1000)} / 1,000", f"[yellow]{_usd(line.cost)}")
    out.print(table)
    if result.max_cost is not None:
        verdict = "within" if result.within_budget else "[bold red]OVER"
        out.print(f"budget {_usd(result.max_cost)}: {verdict}[/]" if not result.within_budget else f"budget {_usd(result.max_cost)}: {verdict}")
    for note in result.notes:
        out.print(f"[dim]{note}[/]")
    sources = sorted({line.source for line in (cost.compute_spot, cost.compute_on_demand, *cost.services, *cost.managed)})
    out.print("[dim]prices from: " + "; ".join(sources) + "[/]")
