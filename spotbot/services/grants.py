"""What the stack grants a cloud job or a registered bot: which buckets it reads, where it writes, what it runs.

A job reads only from the source buckets (SPOTBOT_SOURCE_BUCKETS) or the work bucket's `assets/` area,
never the work bucket's control prefixes (`models/`, `jobs/`) nor the output area, whose text would
come back through GET /tags. A job writes only inside the output bucket, to `<output>/<job_id>/`, and
no job's area may sit inside another's. A registered bot runs images only from the stack's
repositories and SPOTBOT_BOT_IMAGE_REPOSITORIES, model data only from the model store, endpoints only on
SPOTBOT_ENDPOINT_INSTANCE_TYPES. Only the principal that made a job or bot, or SPOTBOT_ADMIN_PRINCIPAL,
may cancel or change it. Each refusal is a FieldError naming the field and saying what is allowed.
"""

from __future__ import annotations

from typing import Any

from spotbot.domain import FieldError, ForbiddenError
from spotbot.settings import Settings

ASSETS_PREFIX = "assets/"  # the work bucket's asset area: uploads a job may tag
CONTROL_PREFIXES = ("models/", "jobs/")  # the work bucket's own state: model store, shard manifests
MAX_URI_BYTES = 1024


def split_s3(uri: str) -> tuple[str, str]:
    """s3://bucket/key/prefix -> (bucket, key/prefix)."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def default_output(settings: Settings) -> str | None:
    """Where a job that names no output writes: SPOTBOT_DEFAULT_OUTPUT, else the work bucket's output/."""
    if settings.default_output:
        return settings.default_output.rstrip("/")
    return f"s3://{settings.work_bucket}/output" if settings.work_bucket else None


def output_bucket(settings: Settings) -> str | None:
    output = default_output(settings)
    return split_s3(output)[0] if output else None


def _under(key: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/") + "/"
    return key == prefix.rstrip("/") or key.startswith(prefix)


def _in_output_area(settings: Settings, bucket: str, key: str) -> bool:
    output = default_output(settings)
    if output is None:
        return False
    out_bucket, out_key = split_s3(output)
    return bucket == out_bucket and (not out_key or _under(key, out_key))


def _in_control_area(settings: Settings, bucket: str, key: str) -> bool:
    return bucket == settings.work_bucket and any(_under(key, prefix) for prefix in CONTROL_PREFIXES)


def allowed_sources(settings: Settings) -> list[str]:
    granted = [f"s3://{bucket}/" for bucket in settings.source_buckets]
    if settings.work_bucket:
        granted.append(f"s3://{settings.work_bucket}/{ASSETS_PREFIX}")
    return granted


def check_source(settings: Settings, source: str, field: str = "body.source") -> None:
    """Raises FieldError unless the stack grants reading the source."""
    bucket, key = split_s3(source)
    granted = ", ".join(allowed_sources(settings)) or "none (set SPOTBOT_SOURCE_BUCKETS)"
    if _in_control_area(settings, bucket, key) or _in_output_area(settings, bucket, key):
        raise FieldError(field, f"is the stack's own state or output, which no job may read; sources allowed: {granted}")
    if bucket == settings.work_bucket:
        if _under(key, ASSETS_PREFIX):
            return
        raise FieldError(field, f"the work bucket grants only its {ASSETS_PREFIX} area; sources allowed: {granted}")
    if bucket not in settings.source_buckets:
        raise FieldError(field, f"bucket {bucket!r} is not granted to jobs; sources allowed: {granted}")


def check_output(settings: Settings, output: str, field: str = "body.output") -> None:
    """Raises FieldError unless the output prefix is in the output bucket, outside the stack's own areas."""
    bucket, key = split_s3(output)
    allowed = output_bucket(settings)
    if bucket != allowed:
        raise FieldError(field, f"outputs go to the output bucket s3://{allowed}/ only (default {default_output(settings)})")
    if _in_control_area(settings, bucket, key) or (bucket == settings.work_bucket and _under(key, ASSETS_PREFIX)):
        raise FieldError(field, f"is the stack's own state or assets; use a prefix under {default_output(settings)}")


def image_repository(image_uri: str) -> str:
    """<registry>/<repo>:<tag> or <registry>/<repo>@sha256:... -> <registry>/<repo>."""
    name = image_uri.split("@", 1)[0]
    head, _, tail = name.rpartition("/")
    return f"{head}/{tail.split(':', 1)[0]}" if head else name.split(":", 1)[0]


def allowed_repositories(settings: Settings) -> list[str]:
    stack = [image_repository(settings.serving_image_uri)] if settings.serving_image_uri else []
    return list(dict.fromkeys(stack + [repository.rstrip("/") for repository in settings.bot_image_repositories]))


def model_store(settings: Settings) -> str | None:
    """The S3 model store: SPOTBOT_MODELS when it is in S3, else the work bucket's models/."""
    if settings.models.startswith("s3://"):
        return settings.models.rstrip("/")
    return f"s3://{settings.work_bucket}/models" if settings.work_bucket else None


def check_registration(settings: Settings, registration: dict[str, Any]) -> None:
    """Raises FieldError unless the bot's image, model data and instance type are ones the stack grants."""
    repositories = allowed_repositories(settings)
    repository = image_repository(registration["image_uri"])
    if repository not in repositories:
        granted = ", ".join(repositories) or "none (set SPOTBOT_BOT_IMAGE_REPOSITORIES)"
        raise FieldError("body.image_uri", f"repository {repository} is not granted to bots; allowed: {granted}")
    model_data = registration.get("model_data")
    if model_data is not None:
        store = model_store(settings)
        if store is None or not model_data.startswith(store + "/"):
            raise FieldError("body.model_data", f"must be under the model store {store or '(none: set SPOTBOT_MODELS)'}/")
    instance_type = registration.get("instance_type")
    if instance_type is not None:
        types = list(dict.fromkeys([settings.endpoint_instance_type, *settings.endpoint_instance_types]))
        if instance_type not in types:
            raise FieldError("body.instance_type", f"{instance_type!r} is not allowed; use one of {', '.join(types)}")


def check_owner(settings: Settings, what: str, owner: str | None, principal: str | None) -> None:
    """Raises ForbiddenError unless the principal made it or is the admin.

    A record made before principals were recorded (no owner) is the admin's; with no identity on either
    side (a service called with no API in front) there is no one to tell apart.
    """
    if principal == owner or (principal is not None and principal == settings.admin_principal):
        return
    raise ForbiddenError(f"{what} belongs to another principal: only it, or the admin principal, may change it")
