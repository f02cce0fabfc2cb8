"""`spotbot cloud watch add|status|remove`: continuous tagging in AWS through the /watches routes (issue 12)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from spotbot.entrypoints.cli.cloud import ApiOption, JsonOption, RegionOption, _ask, out

watch_app = typer.Typer(
    name="watch", help="Tag what arrives under an S3 prefix, as it arrives: add, status, remove.",
    no_args_is_help=True, add_completion=False,
)  # fmt: skip


@watch_app.command("add")
def add_watch(
    source: Annotated[str, typer.Argument(help="s3://bucket/prefix to watch (its bucket must send events to EventBridge)")],
    bot: Annotated[str, typer.Option("--bot", "-b", help="The bot that tags what arrives")],
    model_version: Annotated[Optional[str], typer.Option("--model-version", help="Pin a model version")] = None,
    full: Annotated[bool, typer.Option("--full", help="Predict every object, even ones an earlier job tagged unchanged")] = False,
    api: ApiOption = ...,  # type: ignore[assignment]
    region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Subscribe a prefix: each object created under it is tagged (the same source and bot twice: one watch)."""
    body = {"source": source, "bot": bot, "model_version": model_version, "incremental": not full}
    watch = _ask(api, region, lambda client: client.request("POST", "/watches", body=body), as_json)
    if watch is None:
        return
    out.print(f"watch {watch['watch_id']}: {watch['source']} with {watch['bot']} -> {watch['output']}/{watch['watch_id']}/",
              highlight=False)  # fmt: skip


@watch_app.command("status")
def watch_status(
    watch_id: Annotated[str, typer.Argument(help="The watch id `add` printed")],
    api: ApiOption = ...,  # type: ignore[assignment]
    region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """A watch's counts, the queue's lag (age of the oldest event) and its dead letters."""
    shown = _ask(api, region, lambda client: client.request("GET", f"/watches/{watch_id}"), as_json)
    if shown is None:
        return
    c, lag = shown["counts"], shown.get("lag_seconds")
    out.print(
        f"watch {watch_id}: done {c['done']:,}  reused {c['skipped']:,}  failed {c['failed']:,}  pending {c['pending']:,}; "
        f"queue {shown['waiting']:,} waiting, lag {'-' if lag is None else f'{lag:.0f} s'}, "
        f"{shown['dead_letters']:,} dead letter(s)",
        highlight=False,
    )


@watch_app.command("remove")
def remove_watch(
    watch_id: Annotated[str, typer.Argument(help="The watch to stop")],
    api: ApiOption = ...,  # type: ignore[assignment]
    region: RegionOption = None,
) -> None:
    """Unsubscribe: objects created from now on are not tagged; what was tagged stays."""
    _ask(api, region, lambda client: client.request("DELETE", f"/watches/{watch_id}"))
    out.print(f"watch {watch_id} removed", highlight=False)
