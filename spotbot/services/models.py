"""Versioned models: archives in a model store, and the registry that picks a bot's current version.

A version is `<store>/<bot>/<version>/model.tar.gz` holding model.json (bot, version, format, and
optionally an approval rule such as {"metric": "accuracy", "min": 0.7}), metrics.json and the
bot's files. The current version is the newest (natural sort of the version names) whose archive
is sound and whose metrics pass its rule. A corrupt archive is rejected with its reason and the
previous version stays current.
"""

from __future__ import annotations

import json
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from spotbot.domain import BadInputError

ARCHIVE = "model.tar.gz"
MANIFEST = "model.json"
METRICS = "metrics.json"


class ModelError(BadInputError):
    """A model archive or version that cannot be used, with the reason."""


class ModelStore(Protocol):
    location: str

    def versions(self, bot: str) -> list[str]: ...
    def token(self, bot: str, version: str) -> str:
        """A token that changes when the archive does (size and mtime, an ETag), read without fetching it."""
    def fetch(self, bot: str, version: str, target: Path) -> str:
        """Copies the archive to target; returns its token."""
    def publish(self, bot: str, version: str, archive: Path) -> str: ...


@dataclass(frozen=True)
class ModelVersion:
    bot: str
    version: str
    store: str
    manifest: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    approved: bool = False
    reason: str = ""
    path: Path | None = None  # the extracted model dir

    @property
    def format(self) -> str:
        return str(self.manifest.get("format", ""))


def version_key(version: str) -> list[Any]:
    """Natural order: v2 < v10, and v1 < v20261121-120000."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", version) if part]


VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def validate_version_name(version: str) -> str:
    """A version name is one path segment of the model store: no slashes, no "..", nothing hidden."""
    if not VERSION_NAME.fullmatch(version) or ".." in version:
        raise ModelError(
            f"model version name {version!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return version


def new_version_name(now: Any = None) -> str:
    from datetime import datetime, timezone

    now = now or datetime.now(timezone.utc)
    return f"v{now:%Y%m%d-%H%M%S}"


class ModelRegistry:
    """Reads versions from stores (first one wins on a name clash), newest first, and extracts them."""

    def __init__(self, stores: list[ModelStore], cache_dir: Path) -> None:
        self.stores = stores
        self.cache_dir = Path(cache_dir).expanduser()

    def _candidates(self, bot: str) -> list[tuple[str, ModelStore]]:
        seen: dict[str, ModelStore] = {}
        for store in self.stores:
            for version in store.versions(bot):
                seen.setdefault(version, store)
        return sorted(seen.items(), key=lambda item: version_key(item[0]), reverse=True)

    def list(self, bot: str) -> list[ModelVersion]:
        """Store by store (a store shadows the ones beneath it), newest first by when each was made (model.json
        created_at, none counting as oldest), then by name."""
        inspected = [self._inspect(bot, version, store) for version, store in self._candidates(bot)]
        newest = sorted(inspected, key=lambda v: (str(v.manifest.get("created_at") or ""), version_key(v.version)), reverse=True)
        rank = {store.location: i for i, store in enumerate(self.stores)}
        return sorted(newest, key=lambda v: rank.get(v.store, len(rank)))

    def current(self, bot: str) -> ModelVersion | None:
        """The newest approved version: the one the next job uses."""
        return next((version for version in self.list(bot) if version.approved), None)

    def resolve(self, bot: str, version: str | None = None) -> ModelVersion | None:
        """The pinned version (which must be sound), or the current one; None when the store has none."""
        if version is None:
            return self.current(bot)
        for name, store in self._candidates(bot):
            if name == version:
                inspected = self._inspect(bot, name, store)
                if inspected.path is None:
                    raise ModelError(f"{bot} model version {version} cannot be used: {inspected.reason}")
                return inspected
        known = ", ".join(name for name, _ in self._candidates(bot)) or "none"
        raise ModelError(f"no {bot} model version {version!r} (versions: {known})")

    def _inspect(self, bot: str, version: str, store: ModelStore) -> ModelVersion:
        base = ModelVersion(bot=bot, version=version, store=store.location)
        try:
            path = self._extract(bot, version, store)
            manifest = _read_json(path / MANIFEST, "model.json")
            metrics = _read_json(path / METRICS, "metrics.json") if (path / METRICS).exists() else {}
        except ModelError as error:
            return _replace(base, reason=str(error))
        if manifest.get("bot") != bot:
            return _replace(base, manifest=manifest, reason=f"model.json is for bot {manifest.get('bot')!r}, not {bot!r}")
        manifest = {**manifest, "version": version}
        approved, reason = _approval(manifest, metrics)
        return _replace(base, manifest=manifest, metrics=metrics, approved=approved, reason=reason, path=path)

    def _extract(self, bot: str, version: str, store: ModelStore) -> Path:
        target = self.cache_dir / bot / version
        token_file = target / ".source"
        try:
            current = store.token(bot, version)
        except (OSError, ModelError) as error:
            raise ModelError(f"cannot read {ARCHIVE}: {error}") from error
        if token_file.exists() and token_file.read_text() == current and (target / MANIFEST).exists():
            return target  # extracted already, and unchanged: no download
        with tempfile.TemporaryDirectory(dir=_ensure(self.cache_dir)) as tmp:
            archive = Path(tmp) / ARCHIVE
            try:
                token = store.fetch(bot, version, archive)
            except (OSError, ModelError) as error:
                raise ModelError(f"cannot fetch {ARCHIVE}: {error}") from error
            staging = Path(tmp) / "extracted"
            extract_archive(archive, staging)
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(staging), target)
            token_file.write_text(token)
        return target


def extract_archive(archive: Path, target: Path) -> None:
    """Extracts a model archive, refusing anything but regular files and folders inside target."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                name = PurePosixPath(member.name)
                if name.is_absolute() or ".." in name.parts:
                    raise ModelError(f"{ARCHIVE} has an unsafe path: {member.name}")
                if not (member.isfile() or member.isdir()):
                    raise ModelError(f"{ARCHIVE} has a link or device: {member.name}")
            target.mkdir(parents=True, exist_ok=True)
            # the members are checked above; the "data" filter adds the same checks where Python has it
            # (3.11.4+: Debian 12's 3.11.2 has not, and extractall there refuses the argument)
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(target, members=members, **safe)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise ModelError(f"{ARCHIVE} is not a readable gzip tar archive: {error}") from error
    nested = [p for p in target.iterdir() if p.name != ".source"]
    if not (target / MANIFEST).exists() and len(nested) == 1 and (nested[0] / MANIFEST).exists():
        for item in nested[0].iterdir():  # an archive of a folder: lift its content up
            shutil.move(str(item), target / item.name)
        nested[0].rmdir()
    if not (target / MANIFEST).exists():
        raise ModelError(f"{ARCHIVE} has no {MANIFEST}")


def pack_model_dir(model_dir: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(Path(model_dir).iterdir()):
            if not path.name.startswith("."):
                tar.add(path, arcname=path.name)
    return archive


def _approval(manifest: dict[str, Any], metrics: dict[str, Any]) -> tuple[bool, str]:
    rule = manifest.get("approval")
    if not rule:
        return True, "no approval rule"
    metric, minimum = rule.get("metric"), rule.get("min")
    value = metrics.get(metric)
    if not isinstance(value, (int, float)):
        return False, f"metrics.json has no {metric!r} for its approval rule"
    if value < minimum:
        return False, f"{metric} {value:.3f} is below its threshold {minimum:.3f}"
    return True, f"{metric} {value:.3f} >= {minimum:.3f}"


def _read_json(path: Path, name: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ModelError(f"archive has no {name}") from error
    except (OSError, ValueError) as error:
        raise ModelError(f"{name} is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise ModelError(f"{name} must hold a JSON object")
    return data


def _replace(version: ModelVersion, **changes: Any) -> ModelVersion:
    from dataclasses import replace

    return replace(version, **changes)


def _ensure(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder
