"""Model stores: a local folder, an S3 prefix, and the versions shipped inside the package."""

from __future__ import annotations

import importlib.util

import shutil
from pathlib import Path
from typing import Any

from spotbot.adapters.s3.keys import unquote_etag
from spotbot.services.models import ARCHIVE, ModelError

PACKAGED_MODELS_PACKAGE = "bots"  # its models/<bot>/<version>/model.tar.gz ship in the wheel


class LocalModelStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.location = str(self.root)

    def versions(self, bot: str) -> list[str]:
        folder = self.root / bot
        if not folder.is_dir():
            return []
        return [p.name for p in folder.iterdir() if (p / ARCHIVE).is_file()]

    def token(self, bot: str, version: str) -> str:
        stat = (self.root / bot / version / ARCHIVE).stat()
        return f"{stat.st_size}-{stat.st_mtime_ns}"

    def fetch(self, bot: str, version: str, target: Path) -> str:
        token = self.token(bot, version)
        shutil.copyfile(self.root / bot / version / ARCHIVE, target)
        return token

    def publish(self, bot: str, version: str, archive: Path) -> str:
        target = self.root / bot / version / ARCHIVE
        if target.exists():
            raise FileExistsError(f"{bot} model version {version} exists already in {self.location}")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        shutil.copyfile(archive, partial)
        partial.replace(target)
        return str(target)


class S3ModelStore:
    """models under s3://bucket/prefix/<bot>/<version>/model.tar.gz."""

    def __init__(self, uri: str, client: Any | None = None, endpoint_url: str | None = None) -> None:
        from spotbot.adapters.s3.assets import parse_s3_uri, s3_client

        self.bucket, prefix = parse_s3_uri(uri)
        self.prefix = prefix.rstrip("/") + "/" if prefix else ""
        self.location = uri
        self.client = client or s3_client(endpoint_url)

    def versions(self, bot: str) -> list[str]:
        found = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}{bot}/"):
            for item in page.get("Contents", []):
                rest = item["Key"][len(f"{self.prefix}{bot}/") :]
                version, _, name = rest.partition("/")
                if name == ARCHIVE:
                    found.append(version)
        return found

    def token(self, bot: str, version: str) -> str:
        key = f"{self.prefix}{bot}/{version}/{ARCHIVE}"
        return unquote_etag(self._s3(self.client.head_object, Bucket=self.bucket, Key=key)["ETag"])

    def fetch(self, bot: str, version: str, target: Path) -> str:
        key = f"{self.prefix}{bot}/{version}/{ARCHIVE}"
        response = self._s3(self.client.get_object, Bucket=self.bucket, Key=key)
        with open(target, "wb") as file:
            shutil.copyfileobj(response["Body"], file)
        return unquote_etag(response["ETag"])

    @staticmethod
    def _s3(call: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        try:
            return call(**kwargs)
        except ClientError as error:
            raise ModelError(f"s3://{kwargs['Bucket']}/{kwargs['Key']}: {error}") from error

    def publish(self, bot: str, version: str, archive: Path) -> str:
        key = f"{self.prefix}{bot}/{version}/{ARCHIVE}"
        self.client.upload_file(str(archive), self.bucket, key)
        return f"s3://{self.bucket}/{key}"


class PackagedModelStore(LocalModelStore):
    """Versions that ship inside the package (bots/models): always there, lowest priority, read-only."""

    def __init__(self) -> None:
        # found, not imported: the library below the entry points does not import the bots package
        spec = importlib.util.find_spec(PACKAGED_MODELS_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(f"the {PACKAGED_MODELS_PACKAGE!r} package with the packaged model versions is not installed")
        super().__init__(Path(list(spec.submodule_search_locations)[0]) / "models")
        self.location = "packaged"

    def publish(self, bot: str, version: str, archive: Path) -> str:
        raise PermissionError("the packaged model store is read-only")
