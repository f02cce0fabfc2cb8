"""`spotbot watch FOLDER --bot NAME`: tag files as they arrive in a local folder, until Ctrl-C."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from rich.console import Console

from spotbot.settings import Settings

err = Console(stderr=True)
EXIT_BAD_INPUT, EXIT_JOB_BUSY = 2, 3  # as `spotbot tag`'s


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def watch(
    folder: Annotated[Path, typer.Argument(help="The local folder to watch (recursively)")],
    bot: Annotated[str, typer.Option("--bot", "-b", help="Built-in bot name (see `spotbot bots`) or module:Class")],
    out_dir: Annotated[Optional[str], typer.Option("--out", "-o", help="Output folder; default ./spotbot-output, or the watch job's own")] = None,
    job_id: Annotated[Optional[str], typer.Option("--job-id", help="The watch job; default: one per folder and bot, so a restart resumes it")] = None,
    debounce: Annotated[float, typer.Option("--debounce", min=0.05, help="Seconds of quiet before a batch of arrivals is tagged")] = 0.5,
    max_wait: Annotated[float, typer.Option("--max-wait", min=0.05, help="Longest seconds an arrival waits during a steady stream")] = 5.0,
    full: Annotated[bool, typer.Option("--full", help="Predict every asset, even those an earlier job tagged unchanged")] = False,
    models: Annotated[Optional[str], typer.Option("--models", help="Model store, a folder or s3://bucket/prefix")] = None,
    model_version: Annotated[Optional[str], typer.Option("--model-version", help="Pin a model version")] = None,
    home: Annotated[Optional[Path], typer.Option("--home", help="Local state folder; default $SPOTBOT_HOME or ~/.spotbot")] = None,
) -> None:
    """Tag files as they are created or changed under FOLDER, into the local index and OUT/<job_id>/.

    On start it catches up on what arrived while it was not running; duplicate events and unchanged
    files are not tagged again. Ctrl-C (or SIGTERM) stops it cleanly; `spotbot status JOB_ID` shows
    its counts.
    """
    from spotbot.adapters.local.assets import LocalAssetStore
    from spotbot.adapters.local.folder_events import FolderEvents
    from spotbot.adapters.local.in_process import InProcessRuntime
    from spotbot.adapters.local.job_lock import JobLockedError, job_lock
    from spotbot.adapters.wiring import open_local_index, open_model_registry, open_output_store
    from spotbot.domain import JobConflictError
    from spotbot.services.bots import UnknownBotError, resolve_bot
    from spotbot.services.models import ModelError
    from spotbot.services.tagging import default_output_dir
    from spotbot.domain.watches import watch_job_id
    from spotbot.services.watch import ArrivalResult, WatchTarget, watch_folder

    settings = Settings(home=home) if home else Settings()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # stop between batches: the batch in hand is finished
        signal.signal(signum, lambda *_: stop.set())
    index = open_local_index(settings)
    try:
        if not folder.is_dir():
            raise FileNotFoundError(f"watch folder {str(folder)!r} is not a folder")
        bot_class = resolve_bot(bot)
        store = LocalAssetStore(folder)
        job_id = job_id or watch_job_id(store.source, bot)
        output = open_output_store(default_output_dir(index.get_job(job_id), out_dir))
        registry, _ = open_model_registry(settings, models)
        model = registry.resolve(bot_class.name, model_version)
        runtime = InProcessRuntime.load(bot, Path(model.path) if model and model.path else None)
        target = WatchTarget(job_id, index, store, output, runtime, settings, bot=bot, incremental=not full)

        def report(result: ArrivalResult) -> None:
            if result.planned or result.failed:
                err.print(
                    f"tagged {result.done} (reused {result.reused}, failed {len(result.failed)}) "
                    f"of {result.arrived} arrived",
                    highlight=False,
                )
            for asset, error in result.failed.items():
                err.print(f"[red]failed:[/] {asset}: {error}", highlight=False)

        with job_lock(settings.locks_dir, job_id):
            with FolderEvents(store, bot_class.file_types, debounce_s=debounce, max_wait_s=max(max_wait, debounce)) as events:
                err.print(f"watching {store.source} as job {job_id} (Ctrl-C stops)", highlight=False)
                watch_folder(
                    target, events.batches(stop.is_set), file_types=bot_class.file_types, on_batch=report,
                    should_stop=stop.is_set,
                )
    except (UnknownBotError, JobConflictError, FileNotFoundError, ModelError, ValueError) as error:
        raise _fail(str(error)) from None
    except JobLockedError as error:
        raise _fail(str(error), EXIT_JOB_BUSY) from None
    finally:
        index.close()
    err.print(f"stopped; `spotbot status {job_id}` shows the watch job", highlight=False)
