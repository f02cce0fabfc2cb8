"""What every `spotbot` command shares: the consoles, the options, the exit codes, and the one map
from the library's errors to exit codes (SpotbotGroup) so no command catches them itself."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import click
import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from spotbot.domain import BadInputError, ConflictError, JobStatus, NotFoundError, SpotbotError

out = Console()
err = Console(stderr=True)

EXIT_OK = 0
EXIT_FAILED = 1  # failed assets with --fail-on-error, work left undone, or the environment (a service down, a full disk)
EXIT_BAD_INPUT = 2  # bad argument, setting, job id, bot or model version: fix the command
EXIT_JOB_BUSY = 3  # the job is running in another process
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
EXIT_TERMINATED = 143  # SIGTERM (128 + SIGTERM)

_json_errors = False  # set by --json, so errors come out as a JSON object too


def _remember_json(value: bool) -> bool:
    global _json_errors
    _json_errors = _json_errors or bool(value)
    return value


HomeOption = Annotated[
    Optional[Path], typer.Option("--home", help="Local state folder (index, locks); default $SPOTBOT_HOME or ~/.spotbot")
]
JsonOption = Annotated[
    bool, typer.Option("--json", callback=_remember_json, is_eager=True, help="Print JSON for scripts instead of tables")
]
ApiOption = Annotated[Optional[str], typer.Option("--api", help="Ask the job API at this URL (SigV4-signed) instead of the local index")]
ModelsOption = Annotated[
    Optional[str], typer.Option("--models", help="Model store, a folder or s3://bucket/prefix; default $SPOTBOT_MODELS or ~/.spotbot/models")
]
ModelVersionOption = Annotated[Optional[str], typer.Option("--model-version", help="Pin a model version; default: the newest approved")]


def print_json(payload: Any) -> None:
    print(json.dumps(payload, ensure_ascii=False, allow_nan=False))


def fail(message: str, code: int = EXIT_BAD_INPUT, hint: str | None = None) -> typer.Exit:
    """One line on stderr (a JSON object under --json) and the exit to raise."""
    if _json_errors:
        payload = {"error": message, "exit_code": code} | ({"hint": hint} if hint else {})
        print(json.dumps(payload, ensure_ascii=False), file=sys.stderr)
    else:
        err.print(f"[bold red]error:[/] {message}" + (f"\n{hint}" if hint else ""), highlight=False, soft_wrap=True)
    return typer.Exit(code)


def exit_code_for(error: BaseException) -> int:
    """The one map from the library's errors to exit codes."""
    from spotbot.adapters.local.job_lock import JobLockedError

    if isinstance(error, JobLockedError):
        return EXIT_JOB_BUSY
    if isinstance(error, (BadInputError, NotFoundError, ConflictError)):
        return EXIT_BAD_INPUT
    return EXIT_FAILED  # UnavailableError, an environment problem (disk full, unreadable index)


def _environment_message(error: BaseException) -> str | None:
    """The one line for an error of the machine, not of the request (disk full, a corrupt index)."""
    if isinstance(error, sqlite3.DatabaseError):
        return f"the local index cannot be used ({error}); run `spotbot doctor` to see what to do"
    if isinstance(error, OSError):
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror or error}{where}"
    return None


class SpotbotGroup(TyperGroup):
    """Runs a command and turns the library's errors into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SpotbotError as error:
            raise fail(str(error), exit_code_for(error)) from None
        except (OSError, sqlite3.DatabaseError) as error:
            raise fail(_environment_message(error) or str(error), EXIT_FAILED) from None


def load_settings(home: Path | None = None) -> Any:
    """The settings from SPOTBOT_*; a bad value is a BadInputError naming the variable."""
    from pydantic import ValidationError

    from spotbot.settings import Settings

    try:
        return Settings(home=home) if home else Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"SPOTBOT_{'_'.join(str(p) for p in e['loc'][:1]).upper()}={e.get('input')!r}: {e['msg']}"
            for e in error.errors()
        )
        raise BadInputError(f"bad setting {problems}") from None
    except ValueError as error:  # a value pydantic-settings could not even parse (bad JSON)
        raise BadInputError(f"bad setting: {error}") from None


_STATUS_STYLE = {
    JobStatus.COMPLETED: "green",
    JobStatus.PARTIAL: "yellow",
    JobStatus.FAILED: "red",
    JobStatus.RUNNING: "cyan",
    JobStatus.CANCELLED: "magenta",
    JobStatus.SUBMITTED: "white",
}


def status_text(status: JobStatus | str) -> Text:
    """A job status, coloured; a status string we do not know is shown as it is."""
    if not isinstance(status, JobStatus):
        if status not in JobStatus.__members__:
            return Text(str(status))
        status = JobStatus(status)
    return Text(status.value, style=_STATUS_STYLE.get(status, ""))


def job_table(job: Any, model_version: str | None) -> Any:
    """The two-column table every job view starts with: status, bot and source, paths folded, never cut."""
    from rich.table import Table

    table = Table(title=f"Job {job.job_id}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("status", status_text(job.status))
    table.add_row("bot", f"{job.bot} ({model_version or '-'})")
    table.add_row("source", job.source)
    return table


def summarize_tags(tags: list) -> str:
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


__all__ = [
    "EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_JOB_BUSY", "EXIT_OK", "EXIT_TERMINATED",
    "ApiOption", "HomeOption", "JsonOption", "ModelVersionOption", "ModelsOption", "SpotbotGroup", "err",
    "exit_code_for", "fail", "job_table", "load_settings", "out", "print_json", "status_text", "summarize_tags",
]
