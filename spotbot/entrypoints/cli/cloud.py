"""`spotbot cloud ...`: jobs in AWS through the job API, signed with your AWS credentials (SigV4).

Each command is a plain, typer-annotated function, registered here on `app` and reusable as a
top-level command of spotbot.entrypoints.cli (`spotbot submit --api URL`) or called from one (`status_remote`).
Exit codes: 0 ok, 2 the API refused the request (400, 404, 409), 1 the API failed or could not be
reached (5xx, network, no credentials).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from spotbot.adapters.api_client import ApiClient, ApiError
from spotbot.entrypoints.cli.console import status_text as _status_text, summarize_tags as _summarize_tags

app = typer.Typer(
    name="cloud",
    help="Jobs in AWS, through the job API (API Gateway, IAM auth): submit, status, jobs, cancel, resume, search, bots.",
    no_args_is_help=True,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)

EXIT_REFUSED = 2
EXIT_API_FAILED = 1  # as every command: something outside us is down (UnavailableError)

ApiOption = Annotated[
    str,
    typer.Option(
        "--api",
        envvar="SPOTBOT_API_URL",
        help="The API's stage URL, e.g. https://<id>.execute-api.<region>.amazonaws.com/v1",
    ),
]
RegionOption = Annotated[Optional[str], typer.Option("--region", help="Region to sign for; default: from the URL, else AWS_REGION")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables")]


def _client(api: str, region: str | None) -> ApiClient:
    try:
        return ApiClient(api, region=region)
    except ValueError as error:
        raise _fail(str(error), EXIT_REFUSED) from None


def _call(action: Any) -> Any:
    try:
        return action()
    except ApiError as error:
        lines = [f"[bold red]error:[/] {error.message}" + (f" (HTTP {error.status})" if error.status else "")]
        lines += [f"  {field.get('field')}: {field.get('message')}" for field in error.fields]
        err.print("\n".join(lines), highlight=False)
        raise typer.Exit(EXIT_REFUSED if 400 <= error.status < 500 else EXIT_API_FAILED) from None


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, ensure_ascii=False))


def _ask(api: str, region: str | None, request: Callable[[ApiClient], Any], as_json: bool = False) -> Any:
    """The API's answer to `request` (an error ends the command, with its exit code). With --json the answer
    is printed as it came and None returned: the command shows nothing more."""
    client = _client(api, region)
    answer = _call(lambda: request(client))
    if as_json:
        _print_json(answer)
        return None
    return answer


def _detail_table(title: str) -> Table:
    """One job's fields, a row each: name in bold, the value folded to fit."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    return table


def submit(
    source: Annotated[str, typer.Argument(help="The assets to tag: s3://bucket/prefix")],
    bot: Annotated[str, typer.Option("--bot", "-b", help="A built-in bot or a registered one (see `spotbot cloud bots`)")],
    output: Annotated[Optional[str], typer.Option("--out", "-o", help="s3://bucket/prefix for the JSON Lines; default: the stack's")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", min=1, max=1000, help="Most Spot workers at once")] = None,
    shard_size: Annotated[Optional[int], typer.Option("--shard-size", min=1, help="Assets per shard; default: automatic")] = None,
    model_version: Annotated[Optional[str], typer.Option("--model-version", help="Pin a model version")] = None,
    job_id: Annotated[Optional[str], typer.Option("--job-id", help="Name the job; default: from the idempotency key, or new")] = None,
    idempotency_key: Annotated[
        Optional[str], typer.Option("--idempotency-key", help="Run the command again with the same key: still one job")
    ] = None,
    max_cost: Annotated[
        Optional[float],
        typer.Option("--max-cost", min=0.0, help="Budget in USD: fails before tagging if estimated above it, stops when it costs more"),
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Predict every asset again, even those an earlier job tagged unchanged")] = False,
    api: ApiOption = ...,  # type: ignore[assignment]
    region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a tagging job in AWS: one Step Functions execution, Spot workers on AWS Batch."""
    accepted = _ask(
        api,
        region,
        lambda client: client.submit(
            source,
            bot,
            output,
            workers,
            shard_size=shard_size,
            model_version=model_version,
            job_id=job_id,
            idempotency_key=idempotency_key,
            max_cost=max_cost,
            full=full,
        ),
        as_json,
    )
    if accepted is None:
        return
    table = _detail_table(f"Job {accepted['job_id']}")
    table.add_row("status", _status_text(accepted["status"]))
    table.add_row("status URL", accepted["status_url"])
    table.add_row("execution", accepted.get("execution_arn") or "-")
    table.add_row("console", accepted.get("console_url") or "-")
    out.print(table)
    err.print(f"follow it: spotbot cloud status {accepted['job_id']}", highlight=False)


def status_remote(
    job_id: Annotated[str, typer.Argument(help="The job id (see `spotbot cloud jobs`)")],
    api: ApiOption = ...,  # type: ignore[assignment]
    region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """A job in AWS: status, counts, labels and its Step Functions execution."""
    job = _ask(api, region, lambda client: client.status(job_id), as_json)
    if job is None:
        return
    counts = job.get("counts") or {}
    execution = job.get("execution") or {}
    table = _detail_table(f"Job {job['job_id']}")
    table.add_row("status", _status_text(job["status"]))
    table.add_row("bot", f"{job['bot']} ({job.get('model_version') or '-'})")
    table.add_row("source", job["source"])
    table.add_row("output", f"{job['output']}/{job['job_id']}")
    table.add_row(
        "counts",
        "  ".join(f"{name} {counts.get(name, 0):,}" for name in ("total", "done", "failed", "skipped", "pending")),
    )
    labels = job.get("labels") or {}
    if labels:
        shown = ", ".join(f"{label} {count:,}" for label, count in list(labels.items())[:10])
        table.add_row("labels", shown + (f" (+{len(labels) - 10} more)" if len(labels) > 10 else ""))
    table.add_row("execution", execution.get("status", "-") + (f": {execution['error']}" if execution.get("error") else ""))
    table.add_row("console", job.get("console_url") or "-")
    table.add_row("created", job.get("created_at") or "-")
    table.add_row("finished", job.get("finished_at") or "-")
    out.print(table)


def jobs_remote(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="How many, newest first")] = 50,
    api: ApiOption = ...,  # type: ignore[assignment]
    region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """The jobs in AWS, newest first."""
    listed = _ask(api, region, lambda client: client.jobs(limit), as_json)
    if listed is None:
        return
    table = Table("job", "bot", "status", "done", "failed", "total", "created", "source")
    for job in listed:
        counts = job.get("counts") or {}
        table.add_row(
            job["job_id"],
            job["bot"],
            _status_text(job["status"]),
            f"{counts.get('done', 0):,}",
            f"{counts.get('failed', 0):,}",
            f"{counts.get('total', 0):,}",
            (job.get("created_at") or "")[:16].replace("T", " "),
            job["source"],
        )
    out.print(table)


def cancel_remote(
    job_id: Annotated[str, typer.Argument(help="The job to cancel")],
    api: ApiOption = ...,  # type: ignore[assignment]
    region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a job in AWS: stop its execution and its Batch jobs; what it tagged so far stays."""
    job = _ask(api, region, lambda client: client.cancel(job_id), as_json)
    if job is None:
        return
    terminated = job.get("terminated_batch_jobs") or []
    out.print(
        f"job {job['job_id']} {job['status']}; execution {(job.get('execution') or {}).get('status', '-')}; "
        f"{len(terminated)} Batch job(s) terminated",
        highlight=False,
    )


def resume_remote(
    job_id: Annotated[str, typer.Argument(help="The PARTIAL, FAILED or CANCELLED job to finish")],
    max_cost: Annotated[Optional[float], typer.Option("--max-cost", min=0.0, help="A new budget in USD for the job")] = None,
    api: ApiOption = ...,  # type: ignore[assignment]
    region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Resume a job in AWS: a new execution tags only what is missing (what is done stays done)."""
    job = _ask(api, region, lambda client: client.resume(job_id, max_cost), as_json)
    if job is None:
        return
    out.print(f"job {job['job_id']} {job['status']}; execution {job.get('execution_arn') or '-'}", highlight=False)
    err.print(f"follow it: spotbot cloud status {job['job_id']}", highlight=False)


def search_remote(
    query: Annotated[Optional[str], typer.Argument(help="Words to find in tags, OCR text and review text")] = None,
    bot: Annotated[Optional[str], typer.Option("--bot", help="Only this bot's tags")] = None,
    label: Annotated[Optional[str], typer.Option("--label", help="Only assets with this label")] = None,
    job: Annotated[Optional[str], typer.Option("--job", help="Only this job's tags")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="Hits per page")] = 20,
    after: Annotated[Optional[str], typer.Option("--after", help="Page cursor: the `next` of the previous page")] = None,
    api: ApiOption = ...,  # type: ignore[assignment]
    region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Search the tags in AWS (OpenSearch): full text with filters on bot, label and job, newest first."""
    from spotbot.domain import Tag
    from spotbot.domain.units import where_found

    page = _ask(
        api, region, lambda client: client.search(query, bot=bot, label=label, job=job, limit=limit, after=after), as_json
    )
    if page is None:
        return
    if not page["items"]:
        err.print("no tags match")
        return
    table = Table("asset", "tags", "match", "bot", "job")
    table.columns[0].overflow = "fold"
    for item in page["items"]:
        tags = [Tag.model_validate(tag) for tag in item.get("tags", [])]
        where = where_found(tags, (query or "").split())  # a document's page, a video's time
        asset = item["asset"] + (f" ({where})" if where else "")
        table.add_row(asset, _summarize_tags(tags), item.get("snippet", ""), item["bot"], item["job_id"])
    out.print(table)
    if page.get("next"):
        err.print(f"more: --after {page['next']}", highlight=False)


def bots_remote(
    api: ApiOption = ...,  # type: ignore[assignment]
    region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """The bots a cloud job can use: built in, and registered (bring your own: POST /bots)."""
    listed = _ask(api, region, lambda client: client.bots(), as_json)
    if listed is None:
        return
    table = Table("bot", "file types", "runtime", "image / model version")
    for bot in listed:
        where = bot.get("image_uri") or bot.get("model_version") or "-"
        name = bot["name"] + ("" if bot.get("builtin") else " *")
        table.add_row(name, " ".join(bot.get("file_types", [])), bot.get("runtime", "-"), where)
    out.print(table)
    err.print("* registered (bring your own bot)", highlight=False)


app.command("submit")(submit)
app.command("status")(status_remote)
app.command("jobs")(jobs_remote)
app.command("cancel")(cancel_remote)
app.command("resume")(resume_remote)
app.command("search")(search_remote)
app.command("bots")(bots_remote)