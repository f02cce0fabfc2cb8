"""Assets in a local folder."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from spotbot.services.decoding import AssetError, too_large
from spotbot.domain import AssetRef


class LocalAssetStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        if not self.root.exists():
            raise FileNotFoundError(f"source folder {str(root)!r} does not exist")
        self.source = str(self.root)

    def scan(self, file_types: tuple[str, ...]) -> Iterator[AssetRef]:
        wanted = tuple(t.lower() for t in file_types)
        if self.root.is_file():
            if self.root.suffix.lower() in wanted:
                yield self._ref(self.root)
            return
        for folder, dirnames, filenames in os.walk(self.root, onerror=None):
            dirnames.sort()
            for filename in sorted(filenames):
                if os.path.splitext(filename)[1].lower() in wanted:
                    yield self._ref(Path(folder) / filename)

    def refs(self, paths: Iterable[str], file_types: tuple[str, ...]) -> list[AssetRef]:
        """The files among these paths that are under the root and of the wanted types: a watch's arrivals."""
        wanted = tuple(t.lower() for t in file_types)
        found = []
        for name in dict.fromkeys(paths):
            path = Path(name).resolve()
            if path.suffix.lower() in wanted and path.is_file() and (path == self.root or self.root in path.parents):
                found.append(self._ref(path))
        return found

    def _ref(self, path: Path) -> AssetRef:
        try:
            stat = path.stat()
        except OSError:  # a dangling link or a file gone since listing: its task fails when read
            return AssetRef(uri=str(path), etag="unreadable", size=0)
        return AssetRef(uri=str(path), etag=f"{stat.st_size:x}-{stat.st_mtime_ns:x}", size=stat.st_size)

    def read(self, asset: AssetRef, max_bytes: int) -> bytes:
        try:
            with open(asset.uri, "rb") as file:
                size = os.fstat(file.fileno()).st_size
                if size > max_bytes:
                    raise AssetError(too_large(size, max_bytes))
                return file.read(max_bytes + 1)
        except OSError as error:
            raise AssetError(f"cannot read file: {error.strerror or error}") from error
