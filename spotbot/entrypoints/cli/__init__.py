"""The `spotbot` command line: tag assets locally, then look at jobs, tasks and tags.

Each command group lives in its own module; this one only builds `app` (the console entry).
"""

from __future__ import annotations

import sys

import typer

from spotbot.entrypoints.cli import doctor, estimate, jobs, models, review, tagging
from spotbot.entrypoints.cli.console import SpotbotGroup

app = typer.Typer(
    name="spotbot",
    help="Put machine-learning tags on many assets: a local folder or S3 prefix in, "
    "a searchable index and JSON Lines out. State lives in SPOTBOT_HOME (default ~/.spotbot). "
    "Exit codes: 0 ok, 1 failed (work left undone, a service or disk down), 2 bad input or setting, "
    "3 job already running, 130 interrupted, 143 terminated.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=SpotbotGroup,
)

app.command()(tagging.tag)
app.command()(jobs.jobs)
app.command()(jobs.status)
app.command()(jobs.search)
app.command()(models.bots)
app.command()(models.train)
app.command()(doctor.doctor)
app.command()(estimate.estimate)

models_app = typer.Typer(help="Model versions: list them, build the packaged baselines.", no_args_is_help=True)
models_app.command("list")(models.models_list)
models_app.command("build")(models.models_build)
app.add_typer(models_app, name="models")


def _register_cloud_commands() -> None:
    from spotbot.entrypoints.cli.cloud import app as cloud_app, submit as cloud_submit

    app.add_typer(cloud_app, name="cloud", help="The deployed system: submit and watch jobs through the API (--api URL).")
    app.command("submit", help="Start a cloud job through the API: spotbot submit s3://bucket/prefix --bot B --api URL")(cloud_submit)


_register_cloud_commands()
app.add_typer(review.app)  # spotbot ui, spotbot reviews


def _register_watch_commands() -> None:  # issue 12: `spotbot watch`, `spotbot cloud watch`, each in its own module
    from spotbot.entrypoints.cli.cloud import app as cloud_app
    from spotbot.entrypoints.cli.cloud_watch import watch_app
    from spotbot.entrypoints.cli.watch import watch

    app.command("watch")(watch)
    cloud_app.add_typer(watch_app)


_register_watch_commands()


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
