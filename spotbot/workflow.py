"""The "tag-assets" state machine, in one place: the CDK stack deploys it and the tests execute it.

Execution input is the job: {"job_id", "bot", "source", "output", "workers", "shard_size",
"model_version"}. State names read as a sentence in the Step Functions console.

- A job with no assets starts no endpoint: the scan runs alone until its pages have found an asset
  (then the rest of the listing runs in parallel with the endpoint start) or the listing is done
  with none (then the job is finalized directly).
- Every wait is bounded: the execution's TimeoutSeconds, a timeout on each Batch step, and the
  endpoint wait, which fails on NotFound/OutOfService/Deleting/RollingBack/Failed and after
  `endpoint_max_polls` checks.
- Every task state has a Catch that goes through "Release the bot endpoint after a failure", which
  passes only the job id: the endpoint Lambda finds the job's endpoint on the job record, because a
  failed Parallel state never writes `$.prepared`. A failed job never leaves an endpoint billing.
"""

from __future__ import annotations

import importlib
from typing import Any

from spotbot.domain.errors import permanent_error_names

RELEASE_AFTER_FAILURE = "Release the bot endpoint after a failure"
CATCH_ALL = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": RELEASE_AFTER_FAILURE}]
LAMBDA_RETRY = [
    {
        "ErrorEquals": ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                        "Lambda.TooManyRequestsException", "Lambda.ClientExecutionTimeoutException"],
        "IntervalSeconds": 2,
        "MaxAttempts": 6,
        "BackoffRate": 2.0,
        "JitterStrategy": "FULL",
    }
]
# The modules whose errors the scanner step raises (BudgetExceededError is the scan's last word on a
# budgeted job); an error from elsewhere is retried, as any unexpected one is.
SCANNER_ERROR_MODULES = (
    "spotbot.domain.errors", "spotbot.domain.job", "spotbot.domain.planning", "spotbot.domain.pricing",
    "spotbot.adapters.s3.listing", "spotbot.adapters.s3.inventory", "spotbot.adapters.s3.scan",
)  # fmt: skip
for _module in SCANNER_ERROR_MODULES:
    importlib.import_module(_module)
# The scanner is resumable (a retried call finds its own input again): retry its own errors too, but
# not those a retry cannot mend (a missing bucket, a bad request, a job over its budget): the first
# retrier that names an error decides, and MaxAttempts 0 sends it straight to the Catch.
SCANNER_RETRY = LAMBDA_RETRY + [
    {"ErrorEquals": permanent_error_names(SCANNER_ERROR_MODULES), "MaxAttempts": 0},
    {"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 10, "MaxAttempts": 3, "BackoffRate": 2.0, "JitterStrategy": "FULL"},
]
ENDPOINT_RETRY = LAMBDA_RETRY + [
    # an endpoint being created, updated or deleted by another job: wait for it (creation takes minutes)
    {"ErrorEquals": ["EndpointBusyError"], "IntervalSeconds": 30, "MaxAttempts": 40, "BackoffRate": 1.0},
]
# A throttled or failed SubmitJob call (not a failed job: that is States.TaskFailed, and Batch's own retry strategy)
SUBMIT_RETRY = [
    {
        "ErrorEquals": ["Batch.BatchException", "Batch.TooManyRequestsException", "Batch.ServerException"],
        "IntervalSeconds": 5,
        "MaxAttempts": 6,
        "BackoffRate": 2.0,
        "JitterStrategy": "FULL",
    }
]
# SageMaker endpoint statuses that will not become InService without someone acting, and our NotFound
ENDPOINT_DEAD_STATUSES = ("Failed", "OutOfService", "Deleting", "RollingBack", "NotFound")
# The worker's environment: what `python -m batch_jobs.worker` reads, taken from the job and the prepared steps
WORKER_ENVIRONMENT = [
    {"Name": "SPOTBOT_JOB_ID", "Value.$": "$.job_id"},
    {"Name": "SPOTBOT_BOT", "Value.$": "$.bot"},
    {"Name": "SPOTBOT_SOURCE", "Value.$": "$.source"},
    {"Name": "SPOTBOT_OUTPUT", "Value.$": "$.output"},
    {"Name": "SPOTBOT_MODEL_VERSION", "Value.$": "$.model_version"},
    {"Name": "SPOTBOT_ENDPOINT_NAME", "Value.$": "$.prepared.endpoint.endpoint_name"},
]
SCAN_SELECTOR = {"done.$": "$.Payload.done", "continuation.$": "$.Payload.continuation", "assets.$": "$.Payload.assets",
                 "shards.$": "$.Payload.shards"}  # fmt: skip
FINAL_SELECTOR = {"status.$": "$.Payload.status", "counts.$": "$.Payload.counts", "summary.$": "$.Payload.summary"}


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


def _scan(scanner: str, next_state: str, catch: bool) -> dict[str, Any]:
    payload = {"job_id.$": "$.job_id", "bot.$": "$.bot", "source.$": "$.source", "shard_size.$": "$.shard_size",
               "workers.$": "$.workers", "continuation.$": "$.scan.continuation"}  # fmt: skip
    return _invoke(scanner, payload, SCAN_SELECTOR, "$.scan", next_state, catch=catch, retry=SCANNER_RETRY)


def _batch(job_queue: str, job_definition: str | None, array: bool, timeout_seconds: int,
           job_tags: dict[str, str] | None) -> dict[str, Any]:  # fmt: skip
    parameters: dict[str, Any] = {
        "JobName.$": "$.job_id",
        "JobQueue": job_queue,
        # one job definition per bot: the API puts the bot's into the execution input
        **({"JobDefinition": job_definition} if job_definition else {"JobDefinition.$": "$.job_definition"}),
        "ContainerOverrides": {"Environment": WORKER_ENVIRONMENT},
        **({"Tags": dict(job_tags)} if job_tags else {}),  # the job definitions propagate them to the tasks
    }
    if array:  # one child per shard; Batch arrays have at least two children
        parameters["ArrayProperties"] = {"Size.$": "$.prepared.scan.shards"}
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::batch:submitJob.sync",
        "Parameters": parameters,
        "ResultPath": None,  # the job's own retry strategy handles Spot reclaims (Host EC2*) and exit code 1
        "TimeoutSeconds": timeout_seconds,  # then Step Functions stops the Batch job (best effort; attempts time out too)
        "Retry": SUBMIT_RETRY,
        "Catch": CATCH_ALL,
        "Next": "Finalize the job",
    }


def tag_assets_definition(
    *, scanner: str, endpoint: str, finalize: str, job_queue: str, job_definition: str | None = None,
    endpoint_poll_seconds: int = 30, endpoint_max_polls: int = 60, timeout_seconds: int = 24 * 3600,
    batch_timeout_seconds: int | None = None, job_tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The Amazon States Language definition, given the Lambda ARNs and the Batch queue.

    With no job_definition, each execution names its own in $.job_definition (one per bot).
    `job_tags` go on every Batch job (what a cancel's TerminateJob permission is held to).
    """
    batch_timeout = batch_timeout_seconds or max(timeout_seconds - 3600, timeout_seconds // 2)
    scan_branch = {
        "StartAt": "Is the listing done?",
        "States": {
            "Is the listing done?": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.scan.done", "BooleanEquals": True, "Next": "Listing done"}],
                "Default": "Scan assets",
            },
            "Scan assets": _scan(scanner, "Is the listing done?", catch=False),  # the Parallel state around it catches
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
                             "Next": "Begin the endpoint checks"}],
                "Default": "The bot runs in the container",
            },
            "The bot runs in the container": {"Type": "Pass", "OutputPath": "$.endpoint", "End": True},
            "Begin the endpoint checks": {"Type": "Pass", "Result": {"count": 0}, "ResultPath": "$.checks",
                                          "Next": "Is the endpoint in service?"},
            "Is the endpoint in service?": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.endpoint.status", "StringEquals": "InService", "Next": "The endpoint is ready"},
                    *({"Variable": "$.endpoint.status", "StringEquals": status, "Next": "The endpoint failed"}
                      for status in ENDPOINT_DEAD_STATUSES),
                    {"Variable": "$.checks.count", "NumericGreaterThanEquals": endpoint_max_polls,
                     "Next": "The endpoint took too long"},
                ],
                "Default": "Wait for the endpoint",
            },
            "Wait for the endpoint": {"Type": "Wait", "Seconds": endpoint_poll_seconds, "Next": "Count the check"},
            "Count the check": {"Type": "Pass", "Parameters": {"count.$": "States.MathAdd($.checks.count, 1)"},
                                "ResultPath": "$.checks", "Next": "Check the endpoint"},
            "Check the endpoint": _invoke(
                endpoint,
                {"action": "describe", "endpoint_name.$": "$.endpoint.endpoint_name"},
                {"runtime": "sagemaker-endpoint", "endpoint_name.$": "$.Payload.endpoint_name", "status.$": "$.Payload.status"},
                "$.endpoint",
                "Is the endpoint in service?",
                catch=False,
            ),
            "The endpoint is ready": {"Type": "Pass", "OutputPath": "$.endpoint", "End": True},
            "The endpoint failed": {"Type": "Fail", "Error": "EndpointFailed",
                                    "Cause": "the bot endpoint stopped short of InService (see Check the endpoint)"},
            "The endpoint took too long": {"Type": "Fail", "Error": "EndpointTimeout",
                                           "Cause": f"the bot endpoint was not InService after {endpoint_max_polls} checks"},
        },
    }  # fmt: skip
    return {
        "Comment": "Tag assets: scan the source into shards, tag them on Spot with AWS Batch, finalize, release the endpoint",
        "StartAt": "Begin the listing",
        "TimeoutSeconds": timeout_seconds,
        "States": {
            "Begin the listing": {"Type": "Pass", "Result": {"continuation": None}, "ResultPath": "$.scan",
                                  "Next": "Scan for the first assets"},
            # alone until an asset is found: a job with nothing to tag never starts an endpoint
            "Scan for the first assets": _scan(scanner, "Are there assets to tag?", catch=True),
            "Are there assets to tag?": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.scan.assets", "NumericGreaterThan": 0, "Next": "Scan assets and start the bot endpoint"},
                    {"Variable": "$.scan.done", "BooleanEquals": True, "Next": "Nothing to tag"},
                ],
                "Default": "Scan for the first assets",
            },
            "Nothing to tag": {
                "Type": "Pass",
                "Parameters": {"scan.$": "$.scan", "endpoint": {"runtime": "none", "endpoint_name": None, "status": "NotStarted"}},
                "ResultPath": "$.prepared",
                "Next": "Finalize the job",
            },
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
            "Tag assets on Spot": _batch(job_queue, job_definition, True, batch_timeout, job_tags),
            "Tag the one shard on Spot": _batch(job_queue, job_definition, False, batch_timeout, job_tags),
            "Finalize the job": _invoke(
                finalize,
                {"job_id.$": "$.job_id", "output.$": "$.output", "error": None},
                FINAL_SELECTOR,
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
            # The failure path: every Catch lands here with the error in $.error; $.prepared may not exist
            RELEASE_AFTER_FAILURE: {
                **_invoke(
                    endpoint,
                    {"action": "release", "job_id.$": "$.job_id"},  # the endpoint is looked up on the job record
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
                    FINAL_SELECTOR,
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
