"""Test-side bridges that make moto run our real code where it would only pretend.

moto's Step Functions interpreter executes the real state machine definition, but its Lambda
and Batch backends without Docker only answer canned results. Here a Lambda invocation runs the
function's real handler (named by its Handler setting, with its environment), and a Batch job
runs the real worker, `python -m batch_jobs.worker`, as a process per array child. moto 5.2.5
also leaves the Batch integration's parameter normalisation empty (KeyError: 'JobName'): the
patch below maps Step Functions' PascalCase parameters to Batch's camelCase and back.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parent.parent
_ENV_LOCK = threading.Lock()


def _camel(key: str) -> str:
    return key[:1].lower() + key[1:]


def _pascal(key: str) -> str:
    return key[:1].upper() + key[1:]


def _rename_keys(value: Any, rename, keep_values_of: tuple[str, ...] = ()) -> Any:
    if isinstance(value, dict):
        return {
            rename(k): (v if k in keep_values_of else _rename_keys(v, rename, keep_values_of)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rename_keys(v, rename, keep_values_of) for v in value]
    return value


class FakeContext:
    def __init__(self, function_name: str, timeout_s: float = 900.0) -> None:
        import time

        self.function_name = function_name
        self.aws_request_id = "test-request"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.memory_limit_in_mb = 1024
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        import time

        return int((self._deadline - time.monotonic()) * 1000)


@contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in variables}
        os.environ.update(variables)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def install(worker_env: dict[str, str], invocations: list[dict[str, Any]], batch_runs: list[dict[str, Any]]) -> list:
    """Patches moto in this process; returns the undo list for `uninstall`."""
    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.batch_simple.models import BatchSimpleBackend
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_batch as sfn_batch

    undo = []

    def invoke(self, function_name, qualifier, body, headers, response_headers):  # noqa: ANN001
        function = self.get_function(function_name, qualifier)
        module_name, _, attribute = function.handler.rpartition(".")
        event = json.loads(body) if body else {}
        record = {"function": function.function_name, "event": event}
        invocations.append(record)
        try:
            with _environment(function.environment_vars or {}):
                handler = getattr(importlib.import_module(module_name), attribute)
                result = handler(event, FakeContext(function.function_name))
            record["result"] = result
            return json.dumps(result).encode()
        except Exception as error:  # noqa: BLE001 - a function error, as Lambda reports it
            record["error"] = f"{type(error).__name__}: {error}"
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": type(error).__name__, "errorMessage": str(error)}).encode()

    def mark_finished(self, include_start_attempt, job):  # noqa: ANN001
        self.backend._jobs[job.job_id] = job
        job.job_started_at = __import__("datetime").datetime.now()
        job.log_stream_name = job._stream_name
        if include_start_attempt:
            job._start_attempt()
        if not include_start_attempt:  # an array parent: its children ran already, it succeeds when all did
            children = [j for j_id, j in self.backend._jobs.items() if j_id.startswith(f"{job.job_id}:")]
            job._mark_stopped(success=bool(children) and all(c.status == "SUCCEEDED" for c in children))
            return
        env = {e["name"]: e["value"] for e in job._get_container_property("environment", [])}
        index = (job.array_properties or {}).get("index")
        run_env = {**os.environ, **worker_env, **env, "PYTHONPATH": str(REPO)}
        if index is not None:
            run_env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(index)
        done = subprocess.run([sys.executable, "-m", "batch_jobs.worker"], cwd=REPO, env=run_env,
                              capture_output=True, text=True, timeout=600)
        batch_runs.append({"job": job.job_id, "index": index, "returncode": done.returncode, "env": env,
                           "stderr": done.stderr[-2000:], "stdout": done.stdout[-4000:]})
        job._mark_stopped(success=done.returncode == 0)

    def normalise_parameters(self, parameters, boto_service_name=None, service_action_name=None):  # noqa: ANN001
        renamed = _rename_keys(dict(parameters), _camel, keep_values_of=("Parameters", "Tags"))
        parameters.clear()
        parameters.update(renamed)

    def normalise_response(self, response, boto_service_name=None, service_action_name=None):  # noqa: ANN001
        renamed = _rename_keys(dict(response), _pascal)
        response.clear()
        response.update(renamed)

    original_eval = sfn_batch.StateTaskServiceBatch._eval_service_task

    def eval_service_task(self, env, resource_runtime_part, normalised_parameters, state_credentials):  # noqa: ANN001
        original_eval(self, env, resource_runtime_part, normalised_parameters, state_credentials)
        submitted = env.stack[-1]
        if isinstance(submitted, dict):
            normalise_response(self, submitted)

    for owner, name, replacement in (
        (LambdaSimpleBackend, "invoke", invoke),
        (BatchSimpleBackend, "_mark_job_as_finished", mark_finished),
        (sfn_batch.StateTaskServiceBatch, "_normalise_parameters", normalise_parameters),
        (sfn_batch.StateTaskServiceBatch, "_normalise_response", normalise_response),
        (sfn_batch.StateTaskServiceBatch, "_eval_service_task", eval_service_task),
    ):
        undo.append((owner, name, owner.__dict__.get(name)))
        setattr(owner, name, replacement)
    return undo


def uninstall(undo: list) -> None:
    for owner, name, original in reversed(undo):
        if original is None:
            delattr(owner, name)
        else:
            setattr(owner, name, original)
