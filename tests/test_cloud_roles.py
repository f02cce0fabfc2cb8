"""Settings per process role and the step Lambdas' shared event parsing: a missing SPOTBOT_* variable
or a malformed state input fails at once, naming what is wrong."""

from __future__ import annotations

import pytest

from spotbot.entrypoints.steps import StepInputError, parse_event
from spotbot.services.finalize import FinalizeRequest
from spotbot.settings import (
    ApiSettings,
    BatchWorkerSettings,
    BudgetWatchSettings,
    EndpointStepSettings,
    FinalizeSettings,
    RegistrySettings,
    RoleSettingsError,
    ScannerSettings,
    Settings,
    load_role,
)
from tests.moto_bridges import FakeContext


@pytest.fixture(autouse=True)
def bare_env(monkeypatch):
    import os

    for name in [n for n in os.environ if n.startswith("SPOTBOT_")]:
        monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize(
    ("role", "missing"),
    [
        (ApiSettings, ["SPOTBOT_OPENSEARCH_ENDPOINT", "SPOTBOT_STATE_MACHINE_ARN", "SPOTBOT_BATCH_JOB_QUEUE"]),
        (ScannerSettings, ["SPOTBOT_OPENSEARCH_ENDPOINT", "SPOTBOT_WORK_BUCKET"]),
        (EndpointStepSettings, ["SPOTBOT_OPENSEARCH_ENDPOINT"]),
        (FinalizeSettings, ["SPOTBOT_OPENSEARCH_ENDPOINT"]),
        (BatchWorkerSettings, ["SPOTBOT_OPENSEARCH_ENDPOINT"]),
        (BudgetWatchSettings, ["SPOTBOT_OPENSEARCH_ENDPOINT", "SPOTBOT_STATE_MACHINE_ARN", "SPOTBOT_BATCH_JOB_QUEUE"]),
    ],
)
def test_each_role_names_every_variable_it_cannot_start_without(role, missing):
    with pytest.raises(RoleSettingsError) as raised:
        load_role(role)
    message = str(raised.value)
    assert message.startswith(f"{role.role} cannot start: ")
    assert [f"{variable} is not set" in message for variable in missing] == [True] * len(missing)
    assert message.count("is not set") == len(missing)  # only what the role reads


def test_a_role_is_a_settings_with_what_it_was_given(bare_env):
    bare_env.setenv("SPOTBOT_OPENSEARCH_ENDPOINT", "https://search.example")
    bare_env.setenv("SPOTBOT_WORK_BUCKET", "work")
    scanner = load_role(ScannerSettings)
    default_parallelism = Settings.model_fields["scan_parallelism"].default
    assert isinstance(scanner, Settings) and scanner.work_bucket == "work" and scanner.scan_parallelism == default_parallelism
    bare_env.setenv("SPOTBOT_MODELS", "/local/models")
    with pytest.raises(RoleSettingsError, match="SPOTBOT_MODELS"):
        load_role(RegistrySettings)  # the registry Lambda reads an S3 store only


def test_a_step_handler_fails_at_cold_start_naming_the_missing_variable():
    from lambdas.finalize.handler import handler

    with pytest.raises(RoleSettingsError, match="SPOTBOT_OPENSEARCH_ENDPOINT is not set"):
        handler({"job_id": "job-1", "output": "s3://out/t", "error": None}, FakeContext("spotbot-finalize"))


def test_step_inputs_are_parsed_one_way_naming_each_bad_field():
    request = parse_event(FinalizeRequest, {"job_id": "job-1", "error": {"Error": "States.Timeout"}}, step="finalize")
    assert request.error.Error == "States.Timeout"
    with pytest.raises(StepInputError, match=r"finalize step input is not valid: job_id: Field required"):
        parse_event(FinalizeRequest, {"output": "s3://out/t"}, step="finalize")
    with pytest.raises(StepInputError, match="input"):
        parse_event(FinalizeRequest, "not an object", step="finalize")
