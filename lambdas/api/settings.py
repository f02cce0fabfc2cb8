"""The job API's settings, read once per container: the one dependency every router reads them through.

`api_settings()` is a Powertools dependency (`ApiSettingsDep` in a route's signature); the services built
from the settings (`cloud_jobs`, `watch_services`, `review_service`) call it too, so a container reads
SPOTBOT_* once. Tests swap the settings for every route with one
`app.dependency_overrides[api_settings] = lambda: their_settings`.
"""

from __future__ import annotations

import functools
from typing import Annotated

from aws_lambda_powertools.event_handler import Depends

from spotbot.settings import ApiSettings, load_role


@functools.cache
def api_settings() -> ApiSettings:
    """The API's settings (granted sources, the S3 endpoint, the listing bound, ...), read on first use."""
    return load_role(ApiSettings)


ApiSettingsDep = Annotated[ApiSettings, Depends(api_settings)]
