"""`spotbot bots`, `models list|build` and `train`: the bots, their model versions, and fine-tuning."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from spotbot.entrypoints.cli.console import (
    HomeOption,
    JsonOption,
    ModelsOption,
    err,
    fail,
    load_settings,
    out,
    print_json,
)


def bots(models: ModelsOption = None, as_json: JsonOption = False, home: HomeOption = None) -> None:
    """The built-in bots: name, file types, current model version and runtime."""
    from spotbot.services.bots import builtin_bots
    from spotbot.adapters.wiring import open_model_registry

    registry, _ = open_model_registry(load_settings(home), models)
    infos = []
    for info in builtin_bots():
        current = registry.current(info.name)
        row = info.__dict__ | {"model_version": current.version if current else info.model_version}
        row["model_store"] = current.store if current else "built in"
        row["ready"] = current is not None or not info.needs_model_version
        if not row["ready"]:
            row["model_version"], row["model_store"] = None, None
        infos.append(row)
    if as_json:
        print_json(infos)
        return
    table = Table("bot", "file types", "model version", "runtime", "what it tags")
    for row in infos:
        version = row["model_version"] or "[red]none: run `spotbot models build`[/]"
        table.add_row(row["name"], " ".join(row["file_types"]), version, row["runtime"], row["description"])
    out.print(table)


def models_list(
    bot: Annotated[Optional[str], typer.Option("--bot", help="Only this bot's versions")] = None,
    models: ModelsOption = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Every model version, newest first, with its metrics and whether it is approved (the first approved one is current)."""
    from spotbot.services.bots import BUILTIN_BOTS
    from spotbot.adapters.wiring import open_model_registry

    registry, _ = open_model_registry(load_settings(home), models)
    rows = []
    for name in [bot] if bot else list(BUILTIN_BOTS):
        current = registry.current(name)
        for version in registry.list(name):
            rows.append(
                {
                    "bot": name,
                    "version": version.version,
                    "current": current is not None and version.version == current.version,
                    "approved": version.approved,
                    "reason": version.reason,
                    "format": version.format,
                    "accuracy": version.metrics.get("accuracy"),
                    "store": version.store,
                }
            )
    if as_json:
        print_json(rows)
        return
    table = Table("bot", "version", "current", "approved", "accuracy", "format", "store", "why")
    for row in rows:
        accuracy = f"{row['accuracy']:.3f}" if isinstance(row["accuracy"], (int, float)) else "-"
        table.add_row(row["bot"], row["version"], "*" if row["current"] else "", "yes" if row["approved"] else "[red]no[/]",
                      accuracy, row["format"], row["store"], row["reason"])
    out.print(table)


def models_build(
    models: ModelsOption = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Build the model versions that are made, not shipped: the car-model backbone exported to ONNX.

    Needs the `export` extra (torch); cached: a version that exists is kept.
    """
    from spotbot.adapters.wiring import open_model_registry
    from training.baselines import build_car_model_baseline

    settings = load_settings(home)
    _, store = open_model_registry(settings, models)
    try:
        location, built = build_car_model_baseline(store)
    except ImportError as error:
        raise fail(f"building the car-model backbone needs torch: pip install -e '.[export]' ({error})") from None
    if as_json:
        print_json({"bot": "car-model", "location": location, "built": built})
        return
    err.print(f"car-model baseline {'built' if built else 'already there'}: {location}", highlight=False)


def train(
    bot: Annotated[str, typer.Option("--bot", "-b", help="The bot to fine-tune: car-model or sentiment")],
    data: Annotated[str, typer.Option("--data", help="Label folders (DATA/<label>/<file>) or a JSON Lines manifest; local or s3://")],
    models: ModelsOption = None,
    version: Annotated[Optional[str], typer.Option("--version", help="Version name; default v<UTC timestamp>")] = None,
    head: Annotated[str, typer.Option("--head", help="logistic or mlp")] = "logistic",
    test_fraction: Annotated[float, typer.Option("--test-fraction", help="Held-out share for evaluation")] = 0.2,
    min_accuracy: Annotated[
        Optional[float], typer.Option("--min-accuracy", help="Approval threshold; default: majority-label accuracy + 0.05")
    ] = None,
    base_version: Annotated[Optional[str], typer.Option("--base-version", help="Version whose backbone to train on")] = None,
    max_per_label: Annotated[Optional[int], typer.Option("--max-per-label", min=2, help="Sample at most this many per label")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Fine-tune a bot on your labelled data: embed it with the bot's backbone, train a head,
    evaluate it on a held-out split, and publish a new version to the model store.

    The newest version whose held-out accuracy passes its threshold becomes the bot's current
    version: the next `spotbot tag` uses it.
    """
    from spotbot.services.models import ModelError
    from spotbot.adapters.wiring import open_model_registry
    from training.datasets import DatasetError
    from training.trainer import TrainConfig, train as train_head

    settings = load_settings(home)
    registry, store = open_model_registry(settings, models, with_default=True)
    config = TrainConfig(
        bot=bot, data=data, version=version, head=head, test_fraction=test_fraction, min_accuracy=min_accuracy,
        base_version=base_version, max_per_label=max_per_label, seed=seed,
    )
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                        MofNCompleteColumn(), console=err, disable=as_json)
    try:
        with progress:
            task = progress.add_task("Embedding", total=None)
            result = train_head(
                config, settings, registry=registry, store=store,
                on_progress=lambda phase, done, total: progress.update(task, completed=done, total=total),
            )
    except (DatasetError, ModelError, ValueError, FileNotFoundError) as error:
        raise fail(str(error)) from None
    current = open_model_registry(settings, models)[0].current(result.bot)  # what the next `spotbot tag --models` uses
    next_version = current.version if current else None
    if as_json:
        print_json({"bot": result.bot, "version": result.version, "location": result.location,
                    "approved": result.approved, "metrics": result.metrics, "next_job_uses": next_version})
        return
    metrics = result.metrics
    table = Table(title=f"{result.bot} {result.version}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("held-out accuracy", f"{metrics['accuracy']:.3f} (majority label: {metrics['majority_accuracy']:.3f})")
    table.add_row("examples", f"{metrics['train_examples']} train / {metrics['test_examples']} test")
    if not result.approved:
        verdict = "[red]no[/]: below its threshold"
    elif next_version == result.version:
        verdict = "yes: the next job uses it"
    else:
        verdict = f"yes, but the next job uses {next_version or 'the built-in model'}"
    table.add_row("approved", verdict)
    table.add_row("next job uses", next_version or "the built-in model")
    table.add_row("published", result.location)
    out.print(table)
