"""Filesystem events of a local folder (watchdog), debounced into batches of arrived assets.

A file written in several steps raises several events; a burst of thousands of files raises
thousands. Paths are collected in a set and a batch is handed out once the folder has been quiet
for `debounce_s`, or the oldest path has waited `max_wait_s`, or `max_batch` paths are waiting.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from spotbot.adapters.local.assets import LocalAssetStore
from spotbot.domain import AssetRef


class _Arrivals(FileSystemEventHandler):
    def __init__(self, paths: queue.SimpleQueue[str]) -> None:
        self.paths = paths

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type not in ("created", "modified", "moved", "closed"):
            return
        path = getattr(event, "dest_path", "") or event.src_path  # a file moved in arrives at its destination
        self.paths.put(path if isinstance(path, str) else path.decode())


class FolderEvents:
    """Use as a context manager: listening starts on enter, so nothing arriving after it is missed."""

    def __init__(
        self,
        store: LocalAssetStore,
        file_types: tuple[str, ...],
        *,
        debounce_s: float = 0.5,
        max_wait_s: float = 5.0,
        max_batch: int = 1000,
    ) -> None:
        if debounce_s <= 0 or max_wait_s < debounce_s or max_batch < 1:
            raise ValueError(
                f"debounce must be > 0 s and at most the longest wait, got {debounce_s} s and {max_wait_s} s "
                f"(batch {max_batch})"
            )
        self.store = store
        self.file_types = file_types
        self.debounce_s = debounce_s
        self.max_wait_s = max_wait_s
        self.max_batch = max_batch
        self._paths: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._observer = Observer()

    def __enter__(self) -> FolderEvents:
        self._observer.schedule(_Arrivals(self._paths), str(self.store.root), recursive=True)
        self._observer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)

    def batches(self, should_stop: Callable[[], bool] = lambda: False, poll_s: float = 0.2) -> Iterator[list[AssetRef]]:
        """Debounced batches of the files that arrived or changed, until should_stop() (checked every poll_s)."""
        waiting: dict[str, None] = {}
        first = last = 0.0
        while not should_stop():
            try:
                path = self._paths.get(timeout=poll_s)
                now = time.monotonic()
                first = first if waiting else now
                waiting[path] = None
                last = now
                while len(waiting) < self.max_batch:  # drain a burst without waiting per event
                    waiting[self._paths.get_nowait()] = None
            except queue.Empty:
                pass
            now = time.monotonic()
            if waiting and (
                now - last >= self.debounce_s or now - first >= self.max_wait_s or len(waiting) >= self.max_batch
            ):
                batch, waiting = list(waiting), {}
                refs = self.store.refs(batch, self.file_types)
                if refs:
                    yield refs

