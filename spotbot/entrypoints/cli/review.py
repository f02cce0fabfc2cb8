"""`spotbot ui` and `spotbot reviews`: look at tags in a web page, and turn review decisions into training data."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from spotbot.entrypoints.cli.console import ApiOption, HomeOption, JsonOption, err, fail, load_settings, out

app = typer.Typer()
reviews_app = typer.Typer(help="Review decisions: export them as a training manifest, see the reviewed accuracy.",
                          no_args_is_help=True)
app.add_typer(reviews_app, name="reviews")


def _thresholds(values: list[str]) -> dict[str, float]:
    thresholds = {}
    for value in values:
        bot, _, number = value.partition("=")
        try:
            thresholds[bot.strip()] = float(number)
        except ValueError:
            raise fail(f"--threshold {value!r} is not BOT=NUMBER, e.g. car-model=0.6") from None
        if not bot.strip() or not 0 <= thresholds[bot.strip()] <= 1:
            raise fail(f"--threshold {value!r} is not BOT=NUMBER with the number between 0 and 1")
    return thresholds


@app.command()
def ui(
    host: Annotated[str, typer.Option("--host", help="Address to listen on; only this machine by default")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port; 0 picks a free one")] = 8765,
    api: ApiOption = None,
    reviewer: Annotated[Optional[str], typer.Option("--reviewer", help="Name stored with each decision; default: your login")] = None,
    threshold: Annotated[
        Optional[list[str]], typer.Option("--threshold", help="BOT=SCORE: tags below it go to review (default 0.8); repeatable")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Serve the web pages: search the tags as a gallery (OCR boxes drawn), watch jobs, review low-confidence tags
    by keyboard. Reads the local index, or with --api the cloud's (requests SigV4-signed). Prints the URL."""
    import socket

    import uvicorn

    from spotbot.entrypoints.ui import UiOptions, build_app

    options = UiOptions(host=host, port=port, api=api, reviewer=reviewer or getpass.getuser(),
                        thresholds=_thresholds(threshold or []))
    settings = load_settings(home)
    if not api:  # the first time over a big index, adding the pages' indexes takes a while: say why we wait
        err.print(f"opening {settings.index_path} ...", highlight=False)
    try:
        web, closers = build_app(settings, options)
    except ValueError as error:
        raise fail(str(error)) from None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        raise fail(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"Spot Tagging Bot UI: http://{shown}:{bound_port}/", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[yellow]warning:[/] listening on {host}: anyone who can reach it can read tags and review", highlight=False)
    server = uvicorn.Server(uvicorn.Config(web, log_level="warning", access_log=False))
    try:
        server.run(sockets=[sock])
    finally:
        for closer in closers:
            closer.close()


@reviews_app.command("export")
def export(
    bot: Annotated[str, typer.Option("--bot", "-b", help="The bot whose corrections to export")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="The manifest to write (JSON Lines, e.g. labels.manifest)")],
    api: ApiOption = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Write the bot's accepted and corrected tags as a Ground Truth classification manifest, one line per asset
    (the latest decision wins): `spotbot train --bot BOT --data OUT` fine-tunes on it."""
    from spotbot.domain import NotFoundError
    from spotbot.services.reviews import write_manifest

    try:
        if api:
            from spotbot.adapters.api_client import ApiClient, ApiError

            try:
                lines = ApiClient(api).request("GET", "/reviews/export", query={"bot": bot})["lines"]
            except ApiError as error:
                raise fail(str(error)) from None
            if not lines:
                raise NotFoundError(f"no accepted or corrected {bot} tags to export")
        else:
            lines = _local_service(home).manifest(bot)
    except NotFoundError as error:
        raise fail(str(error)) from None
    count = write_manifest(lines, out_path)
    labels = sorted({line["label"] for line in lines})
    if as_json:
        print(json.dumps({"bot": bot, "out": str(out_path), "lines": count, "labels": labels}, ensure_ascii=False))
        return
    out.print(f"wrote {count} line(s), labels {', '.join(labels)}, to {out_path}", highlight=False)
    out.print(f"train on them: spotbot train --bot {bot} --data {out_path}", highlight=False)


@reviews_app.command("accuracy")
def accuracy(as_json: JsonOption = False, home: HomeOption = None) -> None:
    """Reviewed accuracy per bot and model version: over the random sample (honest), and over the low-confidence queue."""
    from rich.table import Table

    rows = [row.as_json() for row in _local_service(home).accuracy()]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    table = Table("bot", "model version", "sample right/reviewed", "queue right/reviewed")
    for row in rows:
        table.add_row(row["bot"], row["model_version"], f"{row['sample_right']}/{row['sample_reviewed']}",
                      f"{row['queue_right']}/{row['queue_reviewed']}")
    out.print(table)


def _local_service(home: Path | None):
    from spotbot.adapters.sqlite.reviews import SQLiteReviewStore
    from spotbot.services.reviews import ReviewService

    return ReviewService(SQLiteReviewStore(load_settings(home).index_path))
