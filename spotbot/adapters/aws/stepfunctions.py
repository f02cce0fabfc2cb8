"""WorkflowEngine on AWS Step Functions (boto3)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from spotbot.domain import UnavailableError
from spotbot.ports.control_planes import Execution


def execution_arn_for(state_machine_arn: str, name: str) -> str:
    """arn:aws:states:<region>:<account>:stateMachine:<sm> -> ...:execution:<sm>:<name>."""
    head, _, machine = state_machine_arn.rpartition(":stateMachine:")
    return f"{head}:execution:{machine}:{name}"


class StepFunctionsEngine:
    def __init__(self, client: Any, state_machine_arn: str | None) -> None:
        self.client = client  # boto3 "stepfunctions"
        self.state_machine_arn = state_machine_arn  # None: describe and stop only (the endpoint step knows no ARN)

    def execution_arn(self, name: str) -> str:
        if not self.state_machine_arn:
            raise UnavailableError("SPOTBOT_STATE_MACHINE_ARN is not set: this process cannot start executions")
        return execution_arn_for(self.state_machine_arn, name)

    def start(self, name: str, execution_input: dict[str, Any]) -> tuple[str, bool]:
        arn = self.execution_arn(name)  # fails first when there is no state machine
        try:
            response = self.client.start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(execution_input, sort_keys=True)
            )
            return response["executionArn"], True
        except self.client.exceptions.ExecutionAlreadyExists:
            # a racing request (or an earlier try that failed after starting) got there first: the same job
            self.client.describe_execution(executionArn=arn)
            return arn, False

    def describe(self, execution_arn: str) -> Execution | None:
        try:
            described = self.client.describe_execution(executionArn=execution_arn)
        except self.client.exceptions.ExecutionDoesNotExist:
            return None
        dates = {key: described.get(key) if isinstance(described.get(key), datetime) else None for key in ("startDate", "stopDate")}
        return Execution(
            arn=execution_arn,
            status=described["status"],
            started_at=dates["startDate"],
            stopped_at=dates["stopDate"],
            error=described.get("error") or None,
            cause=described.get("cause") or None,
            input=_json_object(described.get("input")),
        )

    def stop(self, execution_arn: str, *, error: str, cause: str) -> bool:
        if not self.is_running(execution_arn):
            return False
        self.client.stop_execution(executionArn=execution_arn, error=error, cause=cause)
        return True

    def is_running(self, execution_arn: str) -> bool:
        execution = self.describe(execution_arn)
        return execution is not None and execution.is_running


def _json_object(text: str | None) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
