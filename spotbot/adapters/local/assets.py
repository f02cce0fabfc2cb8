"""Assets in a local folder: regular files only; names that are not valid UTF-8 are kept (surrogateescape)."""

from __future__ import annotations

import os
import stat as stat_kinds
from collections.abc import Iterable, Iterator
from pathlib import Path

from spotbot.domain import AssetRef, NotFoundError
from spotbot.domain.limits import AssetError, too_large
from spotbot.ports import LocalFile

UNDECODABLE_NAME = "undecodable-name"  # the etag of a file whose name is not UTF-8: its task fails, shown escaped
_KINDS = {
    stat_kinds.S_IFIFO: "a named pipe",
    stat_kinds.S_IFSOCK: "a socket",
    stat_kinds.S_IFCHR: "a character device",
    stat_kinds.S_IFBLK: "a block device",
    stat_kinds.S_IFDIR: "a folder",
}


def shown(path: str) -> str:
    """A path as a person can read it: bytes that are not UTF-8 shown as backslash-x escapes."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


class LocalAssetStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        if not self.root.exists():
            raise NotFoundError(f"source folder {str(root)!r} does not exist")
        self.source = str(self.root)
        self.skipped: list[str] = []  # what the last scan left out, and why

    def scan(self, file_types: tuple[str, ...]) -> Iterator[AssetRef]:
        wanted = tuple(t.lower() for t in file_types)
        self.skipped = []
        if self.root.is_file():
            if self.root.suffix.lower() in wanted:
                yield from self._ref(self.root)
            return
        for folder, dirnames, filenames in os.walk(self.root, onerror=None):
            dirnames.sort()
            for filename in sorted(filenames):
                if os.path.splitext(filename)[1].lower() in wanted:
                    yield from self._ref(Path(folder) / filename)

    def refs(self, paths: Iterable[str], file_types: tuple[str, ...]) -> list[AssetRef]:
        """The files among these paths that are under the root and of the wanted types: a watch's arrivals."""
        wanted = tuple(t.lower() for t in file_types)
        found = []
        for name in dict.fromkeys(paths):
            path = Path(name).resolve()
            if path.suffix.lower() in wanted and path.is_file() and (path == self.root or self.root in path.parents):
                found.extend(self._ref(path))
        return found

    def _ref(self, path: Path) -> Iterator[AssetRef]:
        readable = shown(str(path))
        if readable != str(path):  # the index and the JSON Lines hold UTF-8 only: fail it alone, named readably
            yield AssetRef(uri=readable, etag=UNDECODABLE_NAME, size=0)
            return
        try:
            info = path.stat()
        except OSError:  # a dangling link or a file gone since listing: its task fails when read
            yield AssetRef(uri=str(path), etag="unreadable", size=0)
            return
        if not stat_kinds.S_ISREG(info.st_mode):  # a pipe or device would block the read forever
            kind = _KINDS.get(stat_kinds.S_IFMT(info.st_mode), "not a regular file")
            self.skipped.append(f"{shown(str(path))}: {kind}, not a regular file")
            return
        yield AssetRef(uri=str(path), etag=f"{info.st_size:x}-{info.st_mtime_ns:x}", size=info.st_size)

    def open_file(self, asset: AssetRef, max_bytes: int, spool_dir: Path) -> LocalFile:
        """The file itself (a video is decoded from it in place): checked as read() checks, not copied."""
        _check_name(asset)
        try:
            info = os.stat(asset.uri)
        except OSError as error:
            raise AssetError(f"cannot read file: {error.strerror or error}") from error
        _check_file(info, max_bytes, "max_video_bytes")
        return LocalFile(path=Path(asset.uri), temporary=False)

    def read(self, asset: AssetRef, max_bytes: int) -> bytes:
        _check_name(asset)
        try:
            # O_NONBLOCK: a file that became a pipe since the scan cannot block the open
            fd = os.open(asset.uri, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError as error:
            raise AssetError(f"cannot read file: {error.strerror or error}") from error
        with open(fd, "rb") as file:
            _check_file(os.fstat(fd), max_bytes, "max_asset_bytes")
            try:
                return file.read(max_bytes + 1)
            except OSError as error:
                raise AssetError(f"cannot read file: {error.strerror or error}") from error


def _check_name(asset: AssetRef) -> None:
    if asset.etag == UNDECODABLE_NAME:
        raise AssetError("the file name is not valid UTF-8 (shown with \\x escapes); rename the file to tag it")


def _check_file(info: os.stat_result, max_bytes: int, setting: str) -> None:
    """A regular file of at most max_bytes (`setting` names the limit in the error)."""
    if not stat_kinds.S_ISREG(info.st_mode):
        raise AssetError("not a regular file (a pipe or device?)")
    if info.st_size > max_bytes:
        raise AssetError(too_large(info.st_size, max_bytes, setting))
