"""`spotbot jobs`, `status` and `search`: what the local index knows (with --api: the cloud's)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from spotbot.entrypoints.cli.console import (
    ApiOption,
    HomeOption,
    JsonOption,
    err,
    job_table,
    load_settings,
    out,
    print_json,
    status_text,
    summarize_tags,
)


def jobs(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many, newest first")] = 50,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """List the jobs in the local index, newest first."""
    from spotbot.adapters.wiring import open_local_index

    index = open_local_index(load_settings(home))
    try:
        listed = [job.model_copy(update={"counts": index.counts(job.job_id)}) for job in index.list_jobs(limit)]
    finally:
        index.close()
    if as_json:
        print_json([job.model_dump(mode="json") for job in listed])
        return
    table = Table("job", "bot", "status", "done", "failed", "total", "created", "source")
    for job in listed:
        table.add_row(
            job.job_id,
            job.bot,
            status_text(job.status),
            f"{job.counts.done:,}",
            f"{job.counts.failed:,}",
            f"{job.counts.total:,}",
            f"{job.created_at:%Y-%m-%d %H:%M}",
            job.source,
        )
    out.print(table)


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

    index = open_local_index(load_settings(home))
    try:
        job = job_status(index, job_id)
        failed = index.failed_tasks(job_id, limit=failed_limit)
    finally:
        index.close()
    if as_json:
        payload = job.model_dump(mode="json")
        payload["failed_tasks"] = [task.model_dump(mode="json") for task in failed]
        print_json(payload)
        return
    table = job_table(job, job.model_version)
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
        failures.columns[0].overflow = failures.columns[2].overflow = "fold"  # a path is shown whole, not cut
        out.print(failures)
        if counts.failed > len(failed):
            out.print(f"... and {counts.failed - len(failed)} more (--failed N, or --json)")


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
    from spotbot.domain.units import where_found
    from spotbot.adapters.wiring import open_local_index

    index = open_local_index(load_settings(home))
    try:
        hits = index.search(SearchQuery(text=query, bot=bot, label=label, job_id=job, limit=limit))
    finally:
        index.close()
    if as_json:
        print_json([hit.record.model_dump(mode="json", exclude_none=True) for hit in hits])
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
        where = where_found(hit.record.tags, (query or "").split())  # a document's page, a video's time
        row = [hit.record.asset + (f" ({where})" if where else ""), summarize_tags(hit.record.tags), hit.snippet]
        row += [hit.record.bot] if not bot else []
        row += [hit.record.job_id] if not job else []
        table.add_row(*row)
    out.print(table)
