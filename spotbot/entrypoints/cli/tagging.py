"""`spotbot tag`: tag a folder or an S3 prefix locally, with a live progress bar, stoppable by Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, Task as ProgressTask, TextColumn
from rich.text import Text

from spotbot.domain import Job, JobCounts
from spotbot.entrypoints.cli.console import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    HomeOption,
    JsonOption,
    ModelsOption,
    ModelVersionOption,
    err,
    fail,
    job_table,
    load_settings,
    out,
    print_json,
)


class JobStopped(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: a KeyboardInterrupt, so every cleanup path that handles Ctrl-C handles both."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM stop the job once; a second signal during the cleanup is ignored, so it finishes."""

    def stop(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise JobStopped(signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


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
    forget_deleted: Annotated[
        bool,
        typer.Option("--forget-deleted", help="Like --report-deleted, and drop those earlier tags from the index (search)"),
    ] = False,
    max_cost: Annotated[
        Optional[float], typer.Option("--max-cost", min=0.0, help="Budget in USD: exit 2, tagging nothing, when the estimate is over it")
    ] = None,
    models: ModelsOption = None,
    model_version: ModelVersionOption = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Tag every asset under SOURCE with a bot, in a pool of local worker processes.

    Tags go into the local index (see `spotbot search`) and into OUT/<job_id>/part-<shard>.jsonl;
    OUT/<job_id>/_job.json holds the summary. A corrupt or unreadable asset fails alone: see
    `spotbot status JOB_ID`. Exit codes: 0 done (even with failed assets), 1 failed assets with
    --fail-on-error, work left undone, or a source, sink or disk that failed, 2 bad input,
    3 job already running, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
    """
    from spotbot.adapters.local.job_lock import job_lock
    from spotbot.adapters.local.runner import LocalPoolRunner
    from spotbot.adapters.wiring import open_asset_store, open_local_index, open_model_registry, open_output_store
    from spotbot.services.bots import resolve_bot
    from spotbot.domain import SpotbotError, new_job_id
    from spotbot.services.tagging import TagRequest, default_output_dir, tag_assets

    settings = load_settings(home)
    if max_cost is not None:  # the estimate first: over the budget, nothing runs
        from spotbot.entrypoints.cli.estimate import refuse_over_budget

        refuse_over_budget(source, bot, max_cost, home)
    index = open_local_index(settings)
    job_id = job_id or new_job_id()  # named here, so an interrupted run can say how to resume it
    resume = f"run the same command with --job-id {job_id} to resume it"
    try:
        with stop_on_signals():
            registry, _ = open_model_registry(settings, models)
            existing = index.get_job(job_id)
            store = open_asset_store(source, settings)
            output = open_output_store(default_output_dir(existing, out_dir), settings)
            request = TagRequest(
                bot=bot,
                workers=workers,
                shard_size=shard_size,
                job_id=job_id,
                batch_size=batch_size,
                retry_failed=retry_failed,
                model_version=model_version,
                incremental=not full,
                report_deleted=report_deleted,
                forget_deleted=forget_deleted,
            )
            with _TagProgress(enabled=not as_json) as progress:
                run = tag_assets(
                    request,
                    settings,
                    index=index,
                    store=store,
                    output=output,
                    runner_for=lambda n: LocalPoolRunner(settings, n),
                    lock=lambda job_id: job_lock(settings.locks_dir, job_id),
                    registry=registry,
                    on_progress=progress.update,
                )
    except JobStopped as stopped:
        word = "interrupted" if stopped.exit_code == EXIT_INTERRUPTED else "terminated"
        raise fail(f"{word}; {resume}", stopped.exit_code) from None
    except KeyboardInterrupt:  # Ctrl-C before the handlers were in place
        raise fail(f"interrupted; {resume}", EXIT_INTERRUPTED) from None
    except SpotbotError as error:
        from spotbot.entrypoints.cli.console import exit_code_for

        code = exit_code_for(error)
        raise fail(str(error), code, hint=resume if code == EXIT_FAILED else None) from None
    except OSError as error:  # a full disk or a folder we may not write: the job is saved, the run ends
        where = f": {error.filename}" if error.filename else ""
        raise fail(f"{error.strerror or error}{where}", EXIT_FAILED, hint=resume) from None
    finally:
        index.close()

    job = run.job
    if run.scanned == 0:
        types = " ".join(resolve_bot(bot).file_types)
        err.print(f"[yellow]warning:[/] no assets of types {types} under {job.source}", highlight=False)
    for skipped in run.skipped:
        err.print(f"[yellow]skipped:[/] {skipped}", highlight=False, soft_wrap=True)
    if as_json:
        figures = {
            "scanned": run.scanned,
            "new_tasks": run.new_tasks,
            "processed": run.processed,
            "reused": run.reused,
            "deleted": run.deleted,
            "forgotten": run.forgotten,
            "wall_seconds": round(run.wall_seconds, 3),
            "assets_per_second": round(run.assets_per_second, 1),
            "summary": run.summary_path,
            "errors": run.errors,
            "skipped": run.skipped,
        }
        print_json({"job": job.model_dump(mode="json"), "run": figures})
    else:
        _print_run_summary(run)
        for asset in run.deleted:
            out.print(f"deleted since tagged: {asset}", highlight=False, soft_wrap=True)
        if run.forgotten:
            out.print(f"dropped {run.forgotten:,} earlier tag record(s) of deleted assets from the index", highlight=False)
    for error in run.errors:
        err.print(f"[red]worker error:[/] {error}", highlight=False)
    if job.counts.pending or run.errors:
        raise typer.Exit(EXIT_FAILED)
    if fail_on_error and job.counts.failed:
        raise typer.Exit(EXIT_FAILED)


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


def _print_run_summary(run: Any) -> None:
    job: Job = run.job
    table = job_table(job, job.model_version)
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
