"""`spotbot doctor`: checks the settings, the state folder and the local index, and says what to do."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from spotbot.domain import SpotbotError
from spotbot.entrypoints.cli.console import EXIT_BAD_INPUT, EXIT_FAILED, HomeOption, JsonOption, load_settings, out, print_json


def doctor(as_json: JsonOption = False, home: HomeOption = None) -> None:
    """Check the SPOTBOT_* settings, the state folder (SPOTBOT_HOME) and the local index; exit 0 when all is well."""
    checks: list[dict] = []

    def report(what: str, ok: bool, detail: str) -> None:
        checks.append({"check": what, "ok": ok, "detail": detail})

    code = 0
    try:
        settings = load_settings(home)
        report("settings", True, "every SPOTBOT_* value is valid")
    except SpotbotError as error:
        report("settings", False, f"{error}; fix or unset the variable")
        settings, code = None, EXIT_BAD_INPUT
    if settings is not None:
        code = _check_home(settings.home.expanduser(), settings.index_path, report)
    if as_json:
        print_json({"ok": code == 0, "checks": checks})
    else:
        for check in checks:
            mark = "[green]ok[/]     " if check["ok"] else "[bold red]problem[/]"
            out.print(f"{mark} {check['check']}: {check['detail']}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _check_home(folder: Path, index_path: Path, report) -> int:
    from spotbot.adapters.sqlite.index import SQLiteTagIndex, UnusableIndexError

    if folder.exists() and not folder.is_dir():
        report("home", False, f"{folder} is a file, not a folder: point SPOTBOT_HOME at a folder")
        return EXIT_FAILED
    existing = folder if folder.exists() else next((p for p in folder.parents if p.exists()), Path("/"))
    if not os.access(existing, os.W_OK | os.X_OK):
        report("home", False, f"{existing} cannot be written: point SPOTBOT_HOME at a folder you own")
        return EXIT_FAILED
    report("home", True, f"{folder} can be written")
    if not index_path.exists():
        report("index", True, f"{index_path} will be created by the first job")
        return 0
    try:
        index = SQLiteTagIndex(index_path)
    except UnusableIndexError as error:
        report("index", False, f"{error}. Move it aside (mv {index_path} {index_path}.broken): the next job starts a new one")
        return EXIT_FAILED
    try:
        problems = index.check()
    finally:
        index.close()
    if problems:
        shown = "; ".join(problems[:3])
        report("index", False, f"{index_path} is damaged ({shown}); move it aside (mv {index_path} {index_path}.broken)")
        return EXIT_FAILED
    report("index", True, f"{index_path} passes SQLite's integrity check")
    return 0
