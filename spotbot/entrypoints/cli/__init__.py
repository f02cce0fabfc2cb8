"""The `spotbot` command line: tag assets locally, then look at jobs, tasks and tags."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, SpinnerColumn, Task as ProgressTask, TextColumn
from rich.table import Table
from rich.text import Text

from spotbot.domain import Job, JobCounts, JobStatus

app = typer.Typer(
    name="spotbot",
    help="Put machine-learning tags on many assets: a local folder or S3 prefix in, "
    "a searchable index and JSON Lines out. State lives in SPOTBOT_HOME (default ~/.spotbot).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)

EXIT_FAILED_ASSETS = 1
EXIT_BAD_INPUT = 2
EXIT_JOB_BUSY = 3
EXIT_INTERRUPTED = 130


def _settings(home: Path | None):
    from spotbot.settings import Settings

    return Settings(home=home) if home else Settings()


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


HomeOption = Annotated[
    Optional[Path], typer.Option("--home", help="Local state folder (index, locks); default $SPOTBOT_HOME or ~/.spotbot")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables")]
ApiOption = Annotated[Optional[str], typer.Option("--api", help="Ask the job API at this URL (SigV4-signed) instead of the local index")]
ModelsOption = Annotated[
    Optional[str], typer.Option("--models", help="Model store, a folder or s3://bucket/prefix; default $SPOTBOT_MODELS or ~/.spotbot/models")
]
ModelVersionOption = Annotated[Optional[str], typer.Option("--model-version", help="Pin a model version; default: the newest approved")]


@app.command()
def tag(
    source: Annotated[str, typer.Argument(help="A local folder (or file), or s3://bucket/prefix")],
    bot: Annotated[str, typer.Option("--bot", "-b", help="Built-in bot name (see `spotbot bots`) or module:Class")],
    out_dir: Annotated[
        Optional[str], typer.Option("--out", "-o", help="Output folder; default ./spotbot-output, or the job's own when resuming")
    ] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", min=1, help="Worker processes; default: CPU count")] = None,
    shard_size: Annotated[
        Optional[int], typer.Option("--shard-size", min=1, help="Assets per shard; default: about 4 shards per worker, at most 1000")
    ] = None,
    job_id: Annotated[
        Optional[str], typer.Option("--job-id", help="Name the job; run an existing id again to resume it (tags only what is missing)")
    ] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Assets per model call; default: the bot's")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed/--no-retry-failed", help="On resume, try FAILED assets again")] = True,
    fail_on_error: Annotated[bool, typer.Option("--fail-on-error", help="Exit 1 when any asset failed")] = False,
    full: Annotated[
        bool, typer.Option("--full", help="Predict every asset again, even those an earlier job tagged unchanged")
    ] = False,
    report_deleted: Annotated[
        bool, typer.Option("--report-deleted", help="List assets earlier jobs tagged that are gone (their tags stay)")
    ] = False,
    models: ModelsOption = None,
    model_version: ModelVersionOption = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Tag every asset under SOURCE with a bot, in a pool of local worker processes.

    Tags go into the local index (see `spotbot search`) and into OUT/<job_id>/part-<shard>.jsonl;
    OUT/<job_id>/_job.json holds the summary. A corrupt or unreadable asset fails alone: see
    `spotbot status JOB_ID`. Exit codes: 0 done (even with failed assets), 1 failed assets with
    --fail-on-error or work left undone, 2 bad input, 3 job already running, 130 interrupted.
    """
    from spotbot.adapters.local.job_lock import JobLockedError
    from spotbot.adapters.local.runner import BotLoadError, LocalPoolRunner
    from spotbot.services.bots import UnknownBotError, resolve_bot
    from spotbot.domain import JobConflictError
    from spotbot.services.tagging import TagRequest, default_output_dir, tag_assets
    from spotbot.services.models import ModelError
    from spotbot.adapters.wiring import open_asset_store, open_local_index, open_model_registry, open_output_store

    settings = _settings(home)
    index = open_local_index(settings)
    try:
        registry, _ = open_model_registry(settings, models)
        existing = index.get_job(job_id) if job_id else None
        store = open_asset_store(source, settings)
        output = open_output_store(default_output_dir(existing, out_dir))
        request = TagRequest(
            source=source,
            bot=bot,
            output=output.location,
            workers=workers,
            shard_size=shard_size,
            job_id=job_id,
            batch_size=batch_size,
            retry_failed=retry_failed,
            model_version=model_version,
            incremental=not full,
            report_deleted=report_deleted,
        )
        with _TagProgress(enabled=not as_json) as progress:
            run = tag_assets(
                request,
                settings,
                index=index,
                store=store,
                output=output,
                runner_for=lambda n: LocalPoolRunner(settings, n),
                registry=registry,
                on_progress=progress.update,
            )
    except (UnknownBotError, JobConflictError, FileNotFoundError, ModelError, ValueError) as error:
        raise _fail(str(error)) from None
    except JobLockedError as error:
        raise _fail(str(error), EXIT_JOB_BUSY) from None
    except BotLoadError as error:
        raise _fail(str(error), EXIT_FAILED_ASSETS) from None
    except KeyboardInterrupt:
        hint = f" --job-id {job_id}" if job_id else " with the job id from `spotbot jobs`"
        raise _fail(f"interrupted; run the same command{hint} to resume", EXIT_INTERRUPTED) from None
    finally:
        index.close()

    job = run.job
    if run.scanned == 0:
        types = " ".join(resolve_bot(bot).file_types)
        err.print(f"[yellow]warning:[/] no assets of types {types} under {job.source}", highlight=False)
    if as_json:
        figures = {
            "scanned": run.scanned,
            "new_tasks": run.new_tasks,
            "processed": run.processed,
            "reused": run.reused,
            "deleted": run.deleted,
            "wall_seconds": round(run.wall_seconds, 3),
            "assets_per_second": round(run.assets_per_second, 1),
            "summary": run.summary_path,
            "errors": run.errors,
        }
        print(json.dumps({"job": job.model_dump(mode="json"), "run": figures}, ensure_ascii=False))
    else:
        _print_run_summary(run)
        for asset in run.deleted:
            out.print(f"deleted since tagged: {asset}", highlight=False)
    for error in run.errors:
        err.print(f"[red]worker error:[/] {error}", highlight=False)
    if job.counts.pending or run.errors:
        raise typer.Exit(EXIT_FAILED_ASSETS)
    if fail_on_error and job.counts.failed:
        raise typer.Exit(EXIT_FAILED_ASSETS)


class _CountsColumn(ProgressColumn):
    def render(self, task: ProgressTask) -> Text:
        total = f"{task.total:,.0f}" if task.total is not None else "?"
        text = Text(f"{task.completed:,.0f}/{total}  ")
        text.append(f"done {task.fields.get('done', 0):,}", style="green")
        text.append(f"  failed {task.fields.get('failed', 0):,}", style="red")
        return text


class _RateColumn(ProgressColumn):
    def render(self, task: ProgressTask) -> Text:
        rate = task.fields.get("rate", 0.0)
        eta = task.fields.get("eta")
        eta_text = "--:--" if eta is None else time.strftime("%H:%M:%S" if eta >= 3600 else "%M:%S", time.gmtime(eta))
        return Text(f"{rate:,.1f} assets/s  ETA {eta_text}")


class _TagProgress:
    """A live bar: done / failed / assets per second / ETA, fed by the job's counts."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            _CountsColumn(),
            _RateColumn(),
            console=err,
            transient=False,
            disable=not enabled,
        )
        self.task_id: Any = None
        self.started: float | None = None
        self.first_finished = 0

    def __enter__(self) -> _TagProgress:
        self.progress.__enter__()
        self.task_id = self.progress.add_task("Scanning", total=None, done=0, failed=0, rate=0.0, eta=None)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def update(self, phase: str, counts: JobCounts) -> None:
        finished = counts.done + counts.failed + counts.skipped
        if phase == "tag" and self.started is None:
            self.started, self.first_finished = time.monotonic(), finished
        rate, eta = 0.0, None
        if self.started is not None:
            elapsed = time.monotonic() - self.started
            rate = (finished - self.first_finished) / elapsed if elapsed > 0 else 0.0
            eta = counts.pending / rate if rate > 0 else None
        description = {"scan": "Scanning", "tag": "Tagging", "done": "Done"}.get(phase, phase)
        self.progress.update(
            self.task_id,
            description=description,
            total=counts.total or None,
            completed=finished,
            done=counts.done,
            failed=counts.failed,
            rate=rate,
            eta=eta if phase != "done" else 0,
        )


_STATUS_STYLE = {
    JobStatus.COMPLETED: "green",
    JobStatus.PARTIAL: "yellow",
    JobStatus.FAILED: "red",
    JobStatus.RUNNING: "cyan",
    JobStatus.CANCELLED: "magenta",
    JobStatus.SUBMITTED: "white",
}


def _status_text(status: JobStatus) -> Text:
    return Text(status.value, style=_STATUS_STYLE.get(status, ""))


def _print_run_summary(run: Any) -> None:
    job: Job = run.job
    table = Table(title=f"Job {job.job_id}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("status", _status_text(job.status))
    table.add_row("bot", f"{job.bot} ({job.model_version})")
    table.add_row("source", job.source)
    table.add_row("assets", f"{job.counts.total:,} (this run: {run.processed:,} tagged of {run.scanned:,} scanned)")
    table.add_row("done / failed", f"{job.counts.done:,} / {job.counts.failed:,}")
    table.add_row("reused", f"{job.counts.skipped:,} (records of unchanged assets copied from earlier jobs)")
    table.add_row("wall time", f"{run.wall_seconds:.1f} s")
    table.add_row("throughput", f"{run.assets_per_second:,.1f} assets/s")
    table.add_row("JSON Lines", str(Path(job.output) / job.job_id))
    table.add_row("summary", run.summary_path)
    out.print(table)
    if job.counts.failed:
        out.print(f"[yellow]{job.counts.failed} asset(s) failed:[/] spotbot status {job.job_id}", highlight=False)


@app.command()
def jobs(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many, newest first")] = 50,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """List the jobs in the local index, newest first."""
    from spotbot.adapters.wiring import open_local_index

    index = open_local_index(_settings(home))
    try:
        listed = [job.model_copy(update={"counts": index.counts(job.job_id)}) for job in index.list_jobs(limit)]
    finally:
        index.close()
    if as_json:
        print(json.dumps([job.model_dump(mode="json") for job in listed], ensure_ascii=False))
        return
    table = Table("job", "bot", "status", "done", "failed", "total", "created", "source")
    for job in listed:
        table.add_row(
            job.job_id,
            job.bot,
            _status_text(job.status),
            f"{job.counts.done:,}",
            f"{job.counts.failed:,}",
            f"{job.counts.total:,}",
            f"{job.created_at:%Y-%m-%d %H:%M}",
            job.source,
        )
    out.print(table)


@app.command()
def status(
    job_id: Annotated[str, typer.Argument(help="The job id (see `spotbot jobs`)")],
    failed_limit: Annotated[int, typer.Option("--failed", help="How many failed assets to list")] = 50,
    api: ApiOption = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """A job's status and counts, and its failed assets with their errors (with --api: a cloud job's)."""
    if api:
        from spotbot.entrypoints.cli.cloud import status_remote

        return status_remote(job_id, api=api, as_json=as_json)
    from spotbot.services.tagging import job_status
    from spotbot.adapters.wiring import open_local_index

    index = open_local_index(_settings(home))
    try:
        job = job_status(index, job_id)
        failed = index.failed_tasks(job_id, limit=failed_limit)
    except LookupError as error:
        raise _fail(str(error)) from None
    finally:
        index.close()
    if as_json:
        payload = job.model_dump(mode="json")
        payload["failed_tasks"] = [task.model_dump(mode="json") for task in failed]
        print(json.dumps(payload, ensure_ascii=False))
        return
    table = Table(title=f"Job {job.job_id}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("status", _status_text(job.status))
    table.add_row("bot", f"{job.bot} ({job.model_version or '-'})")
    table.add_row("source", job.source)
    table.add_row("output", str(Path(job.output) / job.job_id))
    counts = job.counts
    table.add_row(
        "counts",
        f"total {counts.total:,}  done {counts.done:,}  reused {counts.skipped:,}  failed {counts.failed:,}  "
        f"pending {counts.pending:,}",
    )
    table.add_row("created", f"{job.created_at:%Y-%m-%d %H:%M:%S} UTC")
    table.add_row("finished", f"{job.finished_at:%Y-%m-%d %H:%M:%S} UTC" if job.finished_at else "-")
    out.print(table)
    if failed:
        failures = Table("failed asset", "attempts", "error", title="Failed assets", title_justify="left")
        for task in failed:
            failures.add_row(task.asset, str(task.attempts), task.error or "")
        out.print(failures)
        if counts.failed > len(failed):
            out.print(f"... and {counts.failed - len(failed)} more (--failed N, or --json)")


@app.command()
def search(
    query: Annotated[Optional[str], typer.Argument(help="Words to find in tags, OCR text and review text")] = None,
    bot: Annotated[Optional[str], typer.Option("--bot", help="Only this bot's tags")] = None,
    label: Annotated[Optional[str], typer.Option("--label", help="Only assets with this label, e.g. positive")] = None,
    job: Annotated[Optional[str], typer.Option("--job", help="Only this job's tags")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Most hits to show")] = 20,
    api: ApiOption = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Search the tag index: full text (Chinese included) with filters on bot, label and job (with --api: the cloud's)."""
    if api:
        from spotbot.entrypoints.cli.cloud import search_remote

        return search_remote(query, bot=bot, label=label, job=job, limit=limit, api=api, as_json=as_json)
    from spotbot.ports import SearchQuery
    from spotbot.adapters.wiring import open_local_index

    index = open_local_index(_settings(home))
    try:
        hits = index.search(SearchQuery(text=query, bot=bot, label=label, job_id=job, limit=limit))
    finally:
        index.close()
    if as_json:
        print(json.dumps([hit.record.model_dump(mode="json", exclude_none=True) for hit in hits], ensure_ascii=False))
        return
    if not hits:
        err.print("no tags match")
        return
    table = Table("asset", "tags", "match")
    table.columns[0].overflow = "fold"
    if not bot:
        table.add_column("bot")
    if not job:
        table.add_column("job", overflow="fold")
    for hit in hits:
        row = [hit.record.asset, _summarize_tags(hit.record.tags), hit.snippet]
        row += [hit.record.bot] if not bot else []
        row += [hit.record.job_id] if not job else []
        table.add_row(*row)
    out.print(table)


def _summarize_tags(tags: list) -> str:
    """"positive 0.98", or "text x3 (0.94-1.00)" for a bot that gives many tags of one label."""
    if not tags:
        return "(none)"
    by_label: dict[str, list[float]] = {}
    for tag in tags:
        by_label.setdefault(tag.label, []).append(tag.score)
    parts = []
    for label, scores in by_label.items():
        if len(scores) == 1:
            parts.append(f"{label} {scores[0]:.2f}")
        else:
            parts.append(f"{label} x{len(scores)} ({min(scores):.2f}-{max(scores):.2f})")
    return ", ".join(parts)


@app.command()
def bots(models: ModelsOption = None, as_json: JsonOption = False, home: HomeOption = None) -> None:
    """The built-in bots: name, file types, current model version and runtime."""
    from spotbot.services.bots import builtin_bots
    from spotbot.adapters.wiring import open_model_registry

    registry, _ = open_model_registry(_settings(home), models)
    infos = []
    for info in builtin_bots():
        current = registry.current(info.name)
        row = info.__dict__ | {"model_version": current.version if current else info.model_version}
        row["model_store"] = current.store if current else "built in"
        infos.append(row)
    if as_json:
        print(json.dumps(infos, ensure_ascii=False))
        return
    table = Table("bot", "file types", "model version", "runtime", "what it tags")
    for row in infos:
        table.add_row(row["name"], " ".join(row["file_types"]), row["model_version"], row["runtime"], row["description"])
    out.print(table)


models_app = typer.Typer(help="Model versions: list them, build the packaged baselines.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list(
    bot: Annotated[Optional[str], typer.Option("--bot", help="Only this bot's versions")] = None,
    models: ModelsOption = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Every model version, newest first, with its metrics and whether it is approved (the first approved one is current)."""
    from spotbot.services.bots import BUILTIN_BOTS
    from spotbot.adapters.wiring import open_model_registry

    registry, _ = open_model_registry(_settings(home), models)
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
        print(json.dumps(rows, ensure_ascii=False))
        return
    table = Table("bot", "version", "current", "approved", "accuracy", "format", "store", "why")
    for row in rows:
        accuracy = f"{row['accuracy']:.3f}" if isinstance(row["accuracy"], (int, float)) else "-"
        table.add_row(row["bot"], row["version"], "*" if row["current"] else "", "yes" if row["approved"] else "[red]no[/]",
                      accuracy, row["format"], row["store"], row["reason"])
    out.print(table)


@models_app.command("build")
def models_build(
    models: ModelsOption = None,
    home: HomeOption = None,
) -> None:
    """Build the model versions that are made, not shipped: the car-model backbone exported to ONNX.

    Needs the `export` extra (torch); cached: a version that exists is kept.
    """
    from spotbot.adapters.wiring import open_model_registry
    from training.baselines import build_car_model_baseline

    settings = _settings(home)
    _, store = open_model_registry(settings, models)
    try:
        location, built = build_car_model_baseline(store)
    except ImportError as error:
        raise _fail(f"building the car-model backbone needs torch: pip install -e '.[export]' ({error})") from None
    err.print(f"car-model baseline {'built' if built else 'already there'}: {location}", highlight=False)


@app.command()
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

    settings = _settings(home)
    registry, store = open_model_registry(settings, models)
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
        raise _fail(str(error)) from None
    if as_json:
        print(json.dumps({"bot": result.bot, "version": result.version, "location": result.location,
                          "approved": result.approved, "metrics": result.metrics}, ensure_ascii=False))
        return
    metrics = result.metrics
    table = Table(title=f"{result.bot} {result.version}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("held-out accuracy", f"{metrics['accuracy']:.3f} (majority label: {metrics['majority_accuracy']:.3f})")
    table.add_row("examples", f"{metrics['train_examples']} train / {metrics['test_examples']} test")
    table.add_row("approved", "yes: the next job uses it" if result.approved else "[red]no[/]: below its threshold")
    table.add_row("published", result.location)
    out.print(table)


def _register_cloud_commands() -> None:
    from spotbot.entrypoints.cli.cloud import app as cloud_app, submit as cloud_submit

    app.add_typer(cloud_app, name="cloud", help="The deployed system: submit and watch jobs through the API (--api URL).")
    app.command("submit", help="Start a cloud job through the API: spotbot submit s3://bucket/prefix --bot B --api URL")(cloud_submit)


_register_cloud_commands()


def _register_watch_commands() -> None:  # issue 12: `spotbot watch`, `spotbot cloud watch`, each in its own module
    from spotbot.entrypoints.cli.cloud import app as cloud_app
    from spotbot.entrypoints.cli.cloud_watch import watch_app
    from spotbot.entrypoints.cli.watch import watch

    app.command("watch")(watch)
    cloud_app.add_typer(watch_app)


_register_watch_commands()


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
