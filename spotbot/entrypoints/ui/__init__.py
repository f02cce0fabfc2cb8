"""`spotbot ui`: the web pages over the local index (or the cloud API). See spotbot.entrypoints.ui.app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class UiOptions:
    host: str = "127.0.0.1"
    port: int = 8765
    api: str | None = None  # the cloud API's URL: review against OpenSearch instead of the local index
    reviewer: str = "me"
    thresholds: dict[str, float] | None = None


def build_app(settings: Any, options: UiOptions) -> tuple[Any, Any]:
    """The Starlette app and what to close when it stops."""
    from spotbot.services.bots import builtin_bots
    from spotbot.entrypoints.ui.app import create_app
    from spotbot.entrypoints.ui.backends import ApiBackend, LocalBackend
    from spotbot.entrypoints.ui.thumbnails import ThumbnailCache
    from spotbot.services.reviews import ReviewService, ReviewSettings

    review_settings = ReviewSettings()
    if options.thresholds:
        review_settings = review_settings.model_copy(update={"thresholds": review_settings.thresholds | options.thresholds})
    closers: list[Any] = []
    if options.api:
        from spotbot.adapters.api_client import ApiClient

        backend: Any = ApiBackend(ApiClient(options.api))
        bots = [info.name for info in builtin_bots()]
    else:
        from spotbot.adapters.sqlite.reviews import SQLiteReviewStore
        from spotbot.adapters.wiring import open_local_index

        index = open_local_index(settings)
        store = SQLiteReviewStore(settings.index_path)
        closers += [index, store]
        backend = LocalBackend(index, ReviewService(store, review_settings))
        bots = sorted({info.name for info in builtin_bots()} | {job.bot for job in index.list_jobs(200)})
    thumbs = ThumbnailCache(settings.home.expanduser() / "thumbnails", settings)
    hosts = [options.host, *LOOPBACK_HOSTS] if options.host not in ("0.0.0.0", "::") else ["*"]
    return create_app(backend, thumbs, options.reviewer, hosts, bots), closers
