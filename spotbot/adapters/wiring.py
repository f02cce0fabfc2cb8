"""The one place that picks an adapter for a location: s3:// URIs get the S3 ones, paths the local ones."""

from __future__ import annotations

# Adapters are imported where they are chosen, so a Lambda that needs only S3 and OpenSearch
# loads neither Pillow nor SQLite code.
from spotbot.services.models import ModelRegistry, ModelStore
from spotbot.ports import AssetStore, OutputStore
from spotbot.settings import Settings


def s3_options(settings: Settings) -> dict:
    """The S3 client's timeouts and attempts, so an endpoint that never answers stops the job in bounded time."""
    return {
        "connect_timeout": settings.s3_connect_timeout_seconds,
        "read_timeout": settings.s3_read_timeout_seconds,
        "max_attempts": settings.s3_max_attempts,
    }


def open_asset_store(source: str, settings: Settings) -> AssetStore:
    from spotbot.adapters.s3.inventory import InventoryAssetStore, is_inventory_source

    if is_inventory_source(source):  # an S3 Inventory report: planned without listing
        return InventoryAssetStore(source, endpoint_url=settings.s3_endpoint_url)
    if source.startswith("s3://"):
        from spotbot.adapters.s3.assets import S3AssetStore

        return S3AssetStore(source, endpoint_url=settings.s3_endpoint_url, **s3_options(settings))
    from spotbot.adapters.local.assets import LocalAssetStore

    return LocalAssetStore(source)


def open_output_store(output: str, settings: Settings | None = None) -> OutputStore:
    if output.startswith("s3://"):
        from spotbot.adapters.s3.output import S3OutputStore

        if settings is None:
            return S3OutputStore(output)
        return S3OutputStore(output, endpoint_url=settings.s3_endpoint_url, **s3_options(settings))
    from spotbot.adapters.local.output import LocalOutputStore

    return LocalOutputStore(output)


def open_local_index(settings: Settings):  # -> SQLiteTagIndex
    from spotbot.adapters.sqlite.index import SQLiteTagIndex

    return SQLiteTagIndex(settings.index_path)


def open_model_store(location: str, settings: Settings) -> ModelStore:
    from spotbot.adapters.model_stores import LocalModelStore, S3ModelStore

    if location.startswith("s3://"):
        return S3ModelStore(location, endpoint_url=settings.s3_endpoint_url)
    return LocalModelStore(location)


def open_model_registry(
    settings: Settings, models: str | None = None, *, with_default: bool = False
) -> tuple[ModelRegistry, ModelStore]:
    """The registry over the given (or configured) store, with the packaged versions beneath it.

    with_default: the configured store too, beneath the given one (training into a fresh store finds the
    backbone `spotbot models build` put in the default one)."""
    from spotbot.adapters.model_stores import PackagedModelStore

    store = open_model_store(models or settings.models, settings)
    stores = [store]
    if with_default and models and models != settings.models:
        stores.append(open_model_store(settings.models, settings))
    return ModelRegistry([*stores, PackagedModelStore()], settings.model_cache_dir), store


def open_cloud_index(settings: Settings):  # -> OpenSearchTagIndex
    """The OpenSearch tag index the Lambdas and Batch workers share."""
    from spotbot.adapters.opensearch.index import OpenSearchTagIndex

    if not settings.opensearch_endpoint:
        raise ValueError("SPOTBOT_OPENSEARCH_ENDPOINT is not set")
    index = OpenSearchTagIndex.connect(
        settings.opensearch_endpoint,
        settings.region,
        sigv4=settings.opensearch_sigv4,
        prefix=settings.opensearch_prefix,
    )
    return index


def aws_session(settings: Settings):  # -> boto3.Session
    import boto3

    return boto3.Session(region_name=settings.region) if settings.region else boto3.Session()


def open_workflow_engine(settings: Settings, session=None):  # -> StepFunctionsEngine
    from spotbot.adapters.aws.stepfunctions import StepFunctionsEngine

    return StepFunctionsEngine((session or aws_session(settings)).client("stepfunctions"), settings.state_machine_arn)


def open_bot_endpoints(settings: Settings, index=None, session=None):  # -> BotEndpoints
    """The endpoint service: SageMaker, the index, Step Functions (which says which jobs are live)."""
    from spotbot.adapters.aws.sagemaker import SageMakerEndpoints
    from spotbot.services.endpoints import BotEndpoints, model_data_from

    session = session or aws_session(settings)
    return BotEndpoints(
        host=SageMakerEndpoints(session.client("sagemaker")),
        index=index if index is not None else open_cloud_index(settings),
        workflow=open_workflow_engine(settings, session),
        settings=settings,
        builtin_model_data=model_data_from(open_model_registry(settings)[0]),
    )


def open_compute_queue(settings: Settings, session=None):  # -> BatchQueue | None
    """The Spot workers' Batch queue; None when the role is not given one (its jobs' cost is then not measured)."""
    from spotbot.adapters.aws.batch import BatchQueue

    if not settings.batch_job_queue:
        return None
    return BatchQueue((session or aws_session(settings)).client("batch"), settings.batch_job_queue)


def open_cloud_jobs(settings: Settings):  # -> CloudJobs
    """What the job API works with: the index (its indices made), Step Functions, Batch and the endpoints."""
    from spotbot.adapters.aws.batch import BatchQueue
    from spotbot.services.cloud_jobs import CloudJobs

    index = open_cloud_index(settings)
    index.ensure_indices()  # idempotent; a fresh stack can take a job on its first request
    session = aws_session(settings)
    return CloudJobs(
        index=index,
        workflow=open_workflow_engine(settings, session),
        compute=BatchQueue(session.client("batch"), settings.batch_job_queue),
        settings=settings,
        endpoints=open_bot_endpoints(settings, index, session),
    )
