"""Starts `spotbot train` as a SageMaker training job on managed Spot, then publishes the version.

Needs the `sagemaker` extra (the SageMaker Python SDK v3, about 1 GB with its dependencies):
    pip install -e '.[sagemaker]'
    python -m training.launch --bot car-model --data s3://bucket/labelled/ \
        --models s3://bucket/models --image <account>.dkr.ecr.<region>.amazonaws.com/spotbot-training:latest \
        --role arn:aws:iam::<account>:role/SpotbotSageMakerTraining

The job runs training/Dockerfile's image (entrypoint: training.sagemaker_entry) with the data as
channel `train` and, for car-model, the current version's archive as channel `model`. Spot
interruptions resume from the checkpoint prefix. SageMaker writes its model.tar.gz under the
job's output path; this script copies it to <models>/<bot>/<version>/model.tar.gz, where the
registry (and the next job) finds it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

from spotbot.adapters.s3.assets import parse_s3_uri
from spotbot.services.models import ARCHIVE, new_version_name


@dataclass(frozen=True)
class LaunchRequest:
    bot: str
    data: str  # s3:// folder of label folders, or a manifest object
    models: str  # s3:// model store prefix
    image_uri: str
    role: str
    version: str | None = None
    base_model: str | None = None  # s3://.../model.tar.gz whose backbone to train on (car-model)
    instance_type: str = "ml.m5.xlarge"
    max_run_seconds: int = 3 * 3600
    max_wait_seconds: int = 6 * 3600  # Spot: time waiting for capacity plus running
    hyperparameters: dict[str, str] | None = None


def training_job_settings(request: LaunchRequest, version: str) -> dict[str, Any]:
    """The job's parameters, as plain values: what the SDK objects are built from (and what tests check)."""
    if not request.data.startswith("s3://") or not request.models.startswith("s3://"):
        raise ValueError("--data and --models must be s3:// URIs for a SageMaker training job")
    if request.max_wait_seconds < request.max_run_seconds:
        raise ValueError("max wait must be at least max run (it includes the run time)")
    models = request.models.rstrip("/")
    channels = {"train": request.data}
    if request.base_model:
        channels["model"] = request.base_model
    return {
        "base_job_name": f"spotbot-train-{request.bot}",
        "training_image": request.image_uri,
        "role": request.role,
        "instance_type": request.instance_type,
        "enable_managed_spot_training": True,
        "max_runtime_in_seconds": request.max_run_seconds,
        "max_wait_time_in_seconds": request.max_wait_seconds,
        "checkpoint_s3_uri": f"{models}/_checkpoints/{request.bot}/{version}",
        "output_s3_path": f"{models}/_training-output/{request.bot}",
        "hyperparameters": {"bot": request.bot, "version": version, **(request.hyperparameters or {})},
        "channels": channels,
        "publish_to": f"{models}/{request.bot}/{version}/{ARCHIVE}",
    }


def launch(request: LaunchRequest, *, wait: bool = True, s3_client: Any = None) -> dict[str, Any]:
    from sagemaker.core.shapes import StoppingCondition
    from sagemaker.core.training.configs import CheckpointConfig, Compute, InputData, OutputDataConfig
    from sagemaker.train import ModelTrainer

    version = request.version or new_version_name()
    job = training_job_settings(request, version)
    trainer = ModelTrainer(
        base_job_name=job["base_job_name"],
        training_image=job["training_image"],
        role=job["role"],
        compute=Compute(
            instance_type=job["instance_type"],
            instance_count=1,
            enable_managed_spot_training=job["enable_managed_spot_training"],
        ),
        stopping_condition=StoppingCondition(
            max_runtime_in_seconds=job["max_runtime_in_seconds"],
            max_wait_time_in_seconds=job["max_wait_time_in_seconds"],
        ),
        checkpoint_config=CheckpointConfig(s3_uri=job["checkpoint_s3_uri"]),
        output_data_config=OutputDataConfig(s3_output_path=job["output_s3_path"]),
        hyperparameters=job["hyperparameters"],
    )
    trainer.train(
        input_data_config=[InputData(channel_name=name, data_source=uri) for name, uri in job["channels"].items()],
        wait=wait,
        logs=wait,
    )
    training_job = trainer._latest_training_job  # the SDK keeps the job it started here
    result = {"version": version, "training_job": training_job.training_job_name, "published": None}
    if wait:
        artifact = training_job.model_artifacts.s3_model_artifacts
        result["published"] = publish_artifact(artifact, job["publish_to"], s3_client)
    return result


def publish_artifact(artifact: str, target: str, s3_client: Any = None) -> str:
    """Copies the job's model.tar.gz into the model store, where the registry looks."""
    import boto3

    s3 = s3_client or boto3.client("s3")
    source_bucket, source_key = parse_s3_uri(artifact)
    bucket, key = parse_s3_uri(target)
    s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": source_bucket, "Key": source_key})
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bot", required=True, choices=("car-model", "sentiment"))
    parser.add_argument("--data", required=True)
    parser.add_argument("--models", required=True)
    parser.add_argument("--image", required=True, dest="image_uri")
    parser.add_argument("--role", required=True)
    parser.add_argument("--version")
    parser.add_argument("--base-model", help="s3://.../model.tar.gz of the version to take the backbone from")
    parser.add_argument("--instance-type", default="ml.m5.xlarge")
    parser.add_argument("--max-run", type=int, default=3 * 3600, dest="max_run_seconds")
    parser.add_argument("--max-wait", type=int, default=6 * 3600, dest="max_wait_seconds")
    parser.add_argument("--no-wait", action="store_true")
    args = vars(parser.parse_args())
    wait = not args.pop("no_wait")
    print(json.dumps(launch(LaunchRequest(**args), wait=wait), indent=2))


if __name__ == "__main__":
    main()
