"""POST /estimates (issue 13): what a job would cost, before anything runs -- `spotbot estimate` in the cloud.

A Powertools Router, included by lambdas/api/handler.py. The source is listed (at most
SPOTBOT_ESTIMATE_MAX_KEYS keys, to answer within API Gateway's 29 s) or read from an S3 Inventory
manifest; seconds per asset come from the bot's recorded profile (bench/bots.py), since a Lambda
does not run the bot. The answer is spotbot.services.estimate.JobEstimate.as_dict().
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body
from pydantic import BaseModel, ConfigDict, Field, field_validator

from lambdas.api.settings import ApiSettingsDep
from lambdas.api.shapes import errors, json_answer
from spotbot.domain import AssetRef, BadInputError, NotFoundError
from spotbot.services import grants
from spotbot.services.cloud_requests import BOT_NAME_PATTERN, S3_URI_SCHEMA, InvalidRequest, check_s3_uri
from spotbot.services.estimate import EstimateRequest, estimate_job, load_bot_profiles, load_price_table

router = Router()


class EstimateBody(BaseModel):
    """The body of POST /estimates."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    source: str = Field(description="The assets: s3://bucket/prefix, or an S3 Inventory manifest.json", json_schema_extra=S3_URI_SCHEMA)
    bot: str = Field(min_length=1, max_length=63, pattern=BOT_NAME_PATTERN.pattern, description="A built-in bot")
    instance_type: str = Field(default="c6i.large", min_length=1, max_length=32, pattern=r"^[a-z0-9]+\.[a-z0-9]+$")
    spot_discount: float | None = Field(default=None, gt=0, lt=1, description="Spot's discount off on-demand; default: the table's")
    max_cost: float | None = Field(default=None, ge=0, le=1e9, description="A budget in USD: the answer says if it is within")

    _s3_uri = field_validator("source")(check_s3_uri)


class EstimateAnswer(BaseModel):
    """What the job would cost (every figure of `spotbot estimate --json`)."""

    model_config = ConfigDict(extra="allow")

    bot: str
    source: str
    assets: int
    total: dict[str, float] = Field(description="USD: {spot, on_demand}")
    within_budget: bool
    prices: dict[str, Any] = Field(description="The price table's date, region and source")


class _AtMost:
    """The store, read up to about `limit` assets, to answer within API Gateway's 29 s.

    A listing over the limit is refused (the caller is told to use an inventory). An inventory is read
    a data file at a time until the limit is passed; the estimate then extrapolates from the share of
    the report's bytes read (`share_read`), since S3 writes the data files alike.
    """

    def __init__(self, store: Any, limit: int) -> None:
        self.store, self.limit = store, limit
        self.source = store.source
        self.from_inventory = bool(getattr(store, "from_inventory", False))
        self.share_read, self.read_note = 1.0, ""

    def scan(self, file_types: tuple[str, ...]) -> Iterator[AssetRef]:
        if self.from_inventory:
            yield from self._sample_inventory(file_types)
            return
        for count, asset in enumerate(self.store.scan(file_types), start=1):
            if count > self.limit:
                raise InvalidRequest(
                    "body.source",
                    f"holds more than {self.limit:,} assets, more than the API lists in one request: "
                    "give an S3 Inventory manifest (s3://.../manifest.json) of the bucket, or estimate with `spotbot estimate`",
                )
            yield asset

    def _sample_inventory(self, file_types: tuple[str, ...]) -> Iterator[AssetRef]:
        manifest = self.store.manifest()
        files = manifest["files"]
        sizes = [max(0, int(entry.get("size") or 0)) for entry in files]
        rows = read = 0
        for done, entry in enumerate(files, start=1):
            for asset in self.store.scan_file(manifest, entry, file_types):
                rows += 1
                yield asset
            read += sizes[done - 1]
            if rows >= self.limit and done < len(files):
                self.share_read = read / sum(sizes) if all(sizes) else done / len(files)
                self.read_note = f"{done} of the report's {len(files)} data files"
                return


@router.post(
    "/estimates",
    summary="Estimate a job's cost before it runs: assets, vCPU-hours, Spot and on-demand, the managed API beside it",
    responses={200: json_answer(EstimateAnswer, "The estimate"), **errors(400)},
)
def create_estimate(body: Annotated[EstimateBody, Body()], settings: ApiSettingsDep):
    from spotbot.adapters.wiring import open_asset_store

    grants.check_source(settings, body.source)
    request = EstimateRequest(source=body.source, bot=body.bot, instance_type=body.instance_type,
                              spot_discount=body.spot_discount, max_cost=body.max_cost)  # fmt: skip
    table = load_price_table()
    try:
        table.instance(body.instance_type)
    except BadInputError as error:
        raise InvalidRequest("body.instance_type", str(error)) from None
    store = _AtMost(open_asset_store(body.source, settings), settings.estimate_max_keys)
    try:
        estimate = estimate_job(request, store, table=table, profiles=load_bot_profiles())
    except InvalidRequest:
        raise
    except NotFoundError as error:  # no such bucket or manifest
        raise InvalidRequest("body.source", str(error)) from None
    except BadInputError as error:  # a bot without a recorded profile
        raise InvalidRequest("body.bot", str(error)) from None
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=estimate.as_dict())
