"""The "tag-assets" state machine, in one place: the CDK stack deploys it and the tests execute it.

Execution input is the job: {"job_id", "bot", "source", "output", "workers", "shard_size",
"model_version"}. State names read as a sentence in the Step Functions console. Every task
state has a Catch that goes through "Release the bot endpoint after a failure", so a failed job
never leaves an endpoint billing.
"""

from __future__ import annotations

from typing import Any

CATCH_ALL = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Release the bot endpoint after a failure"}]
LAMBDA_RETRY = [
    {
        "ErrorEquals": ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                        "Lambda.TooManyRequestsException"],
        "IntervalSeconds": 2,
        "MaxAttempts": 6,
        "BackoffRate": 2.0,
        "JitterStrategy": "FULL",
    }
]
ENDPOINT_RETRY = LAMBDA_RETRY + [
    # an endpoint being created, updated or deleted by another job: wait for it (creation takes minutes)
    {"ErrorEquals": ["EndpointBusyError"], "IntervalSeconds": 30, "MaxAttempts": 40, "BackoffRate": 1.0},
]
# The worker's environment: what `python -m batch_jobs.worker` reads, taken from the job and the prepared steps
WORKER_ENVIRONMENT = [
    {"Name": "SPOTBOT_JOB_ID", "Value.$": "$.job_id"},
    {"Name": "SPOTBOT_BOT", "Value.$": "$.bot"},
    {"Name": "SPOTBOT_SOURCE", "Value.$": "$.source"},
    {"Name": "SPOTBOT_OUTPUT", "Value.$": "$.output"},
    {"Name": "SPOTBOT_MODEL_VERSION", "Value.$": "$.model_version"},
    {"Name": "SPOTBOT_ENDPOINT_NAME", "Value.$": "$.prepared.endpoint.endpoint_name"},
]


def _invoke(function: str, payload: dict[str, Any], selector: dict[str, str], result_path: str, next_state: str | None,
            catch: bool = True, retry: list[dict[str, Any]] = LAMBDA_RETRY) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function, "Payload": payload},
        "ResultSelector": selector,
        "ResultPath": result_path,
        "Retry": retry,
    }
    if catch:
        state["Catch"] = CATCH_ALL
    if next_state:
        state["Next"] = next_state
    else:
        state["End"] = True
    return state


def _batch(job_queue: str, job_definition: str | None, array: bool) -> dict[str, Any]:
    parameters: dict[str, Any] = {
        "JobName.$": "$.job_id",
        "JobQueue": job_queue,
        # one job definition per bot: the API puts the bot's into the execution input
        **({"JobDefinition": job_definition} if job_definition else {"JobDefinition.$": "$.job_definition"}),
        "ContainerOverrides": {"Environment": WORKER_ENVIRONMENT},
    }
    if array:  # one child per shard; Batch arrays have at least two children
        parameters["ArrayProperties"] = {"Size.$": "$.prepared.scan.shards"}
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::batch:submitJob.sync",
        "Parameters": parameters,
        "ResultPath": None,  # the job's own retry strategy handles Spot reclaims (Host EC2*)
        "Catch": CATCH_ALL,
        "Next": "Finalize the job",
    }


def tag_assets_definition(
    *, scanner: str, endpoint: str, finalize: str, job_queue: str, job_definition: str | None = None,
    endpoint_poll_seconds: int = 30,
) -> dict[str, Any]:
    """The Amazon States Language definition, given the Lambda ARNs and the Batch queue.

    With no job_definition, each execution names its own in $.job_definition (one per bot).
    """
    scan_branch = {
        "StartAt": "Begin the listing",
        "States": {
            "Begin the listing": {"Type": "Pass", "Result": {"continuation": None}, "ResultPath": "$.scan", "Next": "Scan assets"},
            "Scan assets": _invoke(
                scanner,
                {"job_id.$": "$.job_id", "bot.$": "$.bot", "source.$": "$.source", "shard_size.$": "$.shard_size",
                 "workers.$": "$.workers", "continuation.$": "$.scan.continuation"},
                {"done.$": "$.Payload.done", "continuation.$": "$.Payload.continuation", "assets.$": "$.Payload.assets",
                 "shards.$": "$.Payload.shards"},
                "$.scan",
                "Is the listing done?",
                catch=False,  # the Parallel state around it catches
            ),
            "Is the listing done?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.scan.done", "BooleanEquals": True, "Next": "Listing done"}],
                "Default": "Scan assets",
            },
            "Listing done": {"Type": "Pass", "OutputPath": "$.scan", "End": True},
        },
    }
    endpoint_selector = {"runtime.$": "$.Payload.runtime", "endpoint_name.$": "$.Payload.endpoint_name",
                         "status.$": "$.Payload.status"}
    endpoint_branch = {
        "StartAt": "Start the bot endpoint",
        "States": {
            "Start the bot endpoint": _invoke(
                endpoint,
                {"action": "ensure", "job_id.$": "$.job_id", "bot.$": "$.bot", "model_version.$": "$.model_version"},
                endpoint_selector, "$.endpoint", "Does the bot need an endpoint?", catch=False, retry=ENDPOINT_RETRY,
            ),
            "Does the bot need an endpoint?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.endpoint.runtime", "StringEquals": "sagemaker-endpoint",
                             "Next": "Is the endpoint in service?"}],
                "Default": "The bot runs in the container",
            },
            "The bot runs in the container": {"Type": "Pass", "OutputPath": "$.endpoint", "End": True},
            "Is the endpoint in service?": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.endpoint.status", "StringEquals": "InService", "Next": "The endpoint is ready"},
                    {"Variable": "$.endpoint.status", "StringEquals": "Failed", "Next": "The endpoint failed"},
                ],
                "Default": "Wait for the endpoint",
            },
            "Wait for the endpoint": {"Type": "Wait", "Seconds": endpoint_poll_seconds, "Next": "Check the endpoint"},
            "Check the endpoint": _invoke(
                endpoint,
                {"action": "describe", "endpoint_name.$": "$.endpoint.endpoint_name"},
                {"runtime": "sagemaker-endpoint", "endpoint_name.$": "$.Payload.endpoint_name", "status.$": "$.Payload.status"},
                "$.endpoint",
                "Is the endpoint in service?",
                catch=False,
            ),
            "The endpoint is ready": {"Type": "Pass", "OutputPath": "$.endpoint", "End": True},
            "The endpoint failed": {"Type": "Fail", "Error": "EndpointFailed", "Cause": "the bot endpoint did not reach InService"},
        },
    }
    return {
        "Comment": "Tag assets: scan the source into shards, tag them on Spot with AWS Batch, finalize, release the endpoint",
        "StartAt": "Scan assets and start the bot endpoint",
        "States": {
            "Scan assets and start the bot endpoint": {
                "Type": "Parallel",
                "Branches": [scan_branch, endpoint_branch],
                "ResultSelector": {"scan.$": "$[0]", "endpoint.$": "$[1]"},
                "ResultPath": "$.prepared",
                "Catch": CATCH_ALL,
                "Next": "How many shards?",
            },
            "How many shards?": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.prepared.scan.shards", "NumericEquals": 0, "Next": "Finalize the job"},
                    {"Variable": "$.prepared.scan.shards", "NumericEquals": 1, "Next": "Tag the one shard on Spot"},
                ],
                "Default": "Tag assets on Spot",
            },
            "Tag assets on Spot": _batch(job_queue, job_definition, array=True),
            "Tag the one shard on Spot": _batch(job_queue, job_definition, array=False),
            "Finalize the job": _invoke(
                finalize,
                {"job_id.$": "$.job_id", "output.$": "$.output", "error": None},
                {"status.$": "$.Payload.status", "counts.$": "$.Payload.counts", "summary.$": "$.Payload.summary"},
                "$.final",
                "Release the bot endpoint",
            ),
            "Release the bot endpoint": _invoke(
                endpoint,
                {"action": "release", "job_id.$": "$.job_id", "endpoint_name.$": "$.prepared.endpoint.endpoint_name"},
                {"released.$": "$.Payload.released"},
                "$.released",
                None,
                catch=False,  # the job is finalized already; a failed release fails the execution visibly
                retry=ENDPOINT_RETRY,
            ),
            # The failure path: every Catch lands here with the error in $.error
            "Release the bot endpoint after a failure": {
                **_invoke(
                    endpoint,
                    {"action": "release", "job_id.$": "$.job_id", "state.$": "$"},
                    {"released.$": "$.Payload.released"},
                    "$.released",
                    "Record the failure",
                    catch=False,
                    retry=ENDPOINT_RETRY,
                ),
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.release_error", "Next": "Record the failure"}],
            },
            "Record the failure": {
                **_invoke(
                    finalize,
                    {"job_id.$": "$.job_id", "output.$": "$.output", "error.$": "$.error"},
                    {"status.$": "$.Payload.status", "counts.$": "$.Payload.counts", "summary.$": "$.Payload.summary"},
                    "$.final",
                    "The job failed",
                    catch=False,
                ),
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.finalize_error", "Next": "The job failed"}],
            },
            "The job failed": {"Type": "Fail", "Error": "JobFailed", "Cause": "a step failed: see the execution's history"},
        },
    }


def state_names(definition: dict[str, Any]) -> list[str]:
    """Every state name, branches included: for checks that each task state is caught."""
    names = []
    for name, state in definition["States"].items():
        names.append(name)
        for branch in state.get("Branches", []):
            names.extend(state_names(branch))
    return names
