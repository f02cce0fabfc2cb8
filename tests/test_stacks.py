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

from spotbot.bot import BUILTIN_BOTS
from spotbot.workflow import state_names, tag_assets_definition
from stacks import create_app
from stacks.api import ROUTES
from stacks.bundling import LEFT_OUT_OF_LAMBDAS, lambda_requirements
from stacks.config import BUILTIN_BOT_NAMES, ConfigError, TaggingConfig
from stacks.workflow import SUBSTITUTIONS

REPO = Path(__file__).resolve().parent.parent
CONTEXT = {
    "bundle_lambdas": "false",
    "max_vcpus": "64",
    "instance_types": "c6i,m6i.xlarge,c7i",
    "opensearch_instance_type": "r6g.large.search",
    "opensearch_instance_count": "2",
    "source_buckets": "my-assets,more-assets",
}
HANDLERS = ("api", "scanner", "endpoint", "finalize", "registry")
# Actions that accept no resource-level scope, so IAM needs "*" (each is acknowledged in cdk-nag with its reason)
UNSCOPED_ACTIONS = {
    "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets",
    "batch:DescribeJobs", "batch:ListJobs", "ecr:GetAuthorizationToken", "cloudwatch:PutMetricData",
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
    ],
)
def test_bad_context_parameters_are_refused_by_name(values, names):
    with pytest.raises(ConfigError, match=re.escape(names)):
        TaggingConfig.from_context(Context(values))


def test_the_built_in_bots_are_spotbots():
    assert set(BUILTIN_BOT_NAMES) == set(BUILTIN_BOTS)


def test_the_lambda_layer_leaves_the_model_runtimes_out():
    requirements = lambda_requirements()
    names = {re.split(r"[=<>\[;]", requirement)[0].lower() for requirement in requirements}
    assert not names & LEFT_OUT_OF_LAMBDAS
    assert {"pydantic", "pydantic-settings", "aws-lambda-powertools", "opensearch-py", "boto3"} <= names
    assert all("==" in requirement for requirement in requirements), "every Lambda dependency is pinned"


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


def test_one_job_definition_per_bot_retries_spot_reclaims_only_and_times_out(resources, synthesized):
    definitions = of_type(resources, "AWS::Batch::JobDefinition")
    assert len(definitions) == len(BUILTIN_BOT_NAMES) + 1  # each bot's, and "*"
    for definition in definitions.values():
        properties = definition["Properties"]
        assert properties["RetryStrategy"] == {
            "Attempts": 3,
            "EvaluateOnExit": [{"Action": "RETRY", "OnStatusReason": "Host EC2*"}, {"Action": "EXIT", "OnReason": "*"}],
        }
        assert properties["Timeout"] == {"AttemptDurationSeconds": 120 * 60}
        container = properties["ContainerProperties"]
        assert "container-assets" in json.dumps(container["Image"])  # the worker image asset
        names = {variable["Name"] for variable in container["Environment"]}
        assert {"SPOTBOT_OPENSEARCH_ENDPOINT", "SPOTBOT_WORK_BUCKET", "SPOTBOT_MODELS", "SPOTBOT_REGION"} <= names
    # the API maps each bot to its own, "*" to the rest (spotbot.services.cloud_jobs.job_definition_for)
    api = resources[logical_id(resources, "AWS::Lambda::Function", "FunctionsApi")]["Properties"]
    mapping = api["Environment"]["Variables"]["SPOTBOT_JOB_DEFINITIONS"]["Fn::Join"][1]
    keys = set(re.findall(r'"([^"]+)":"', "".join(part for part in mapping if isinstance(part, str))))
    assert keys == {*BUILTIN_BOT_NAMES, "*"}
    assert {part["Ref"] for part in mapping if isinstance(part, dict)} == set(definitions)


def test_the_worker_image_is_built_from_the_repository_root_with_the_batch_dockerfile(synthesized):
    assets = json.loads(next(synthesized["outdir"].glob("*.assets.json")).read_text())["dockerImages"]
    sources = {asset["source"]["dockerFile"]: Path(synthesized["outdir"]) / asset["source"]["directory"] for asset in assets.values()}
    assert set(sources) == {"batch_jobs/Dockerfile", "bots/Dockerfile"}
    for dockerfile, context in sources.items():
        copied = {path.name for path in context.iterdir()}
        assert {"pyproject.toml", "README.md", "spotbot", "bots"} <= copied
        assert not {".venv", "tests", "node_modules", ".git"} & copied
        assert (context / dockerfile).is_file()
    assert all(asset["source"].get("platform") == "linux/amd64" for asset in assets.values())


# the state machine


def test_the_state_machine_is_the_tag_assets_definition_with_the_stack_arns(resources):
    _, machine = only(resources, "AWS::StepFunctions::StateMachine")
    properties = machine["Properties"]
    deployed = json.loads(properties["DefinitionString"])
    assert deployed == tag_assets_definition(**{arg: f"${{{name}}}" for arg, name in SUBSTITUTIONS.items()})
    substitutions = properties["DefinitionSubstitutions"]
    assert substitutions["ScanAssetsFunction"] == {"Fn::GetAtt": [logical_id(resources, "AWS::Lambda::Function", "FunctionsScanner"), "Arn"]}
    assert substitutions["BotEndpointFunction"] == {"Fn::GetAtt": [logical_id(resources, "AWS::Lambda::Function", "FunctionsEndpoint"), "Arn"]}
    assert substitutions["FinalizeFunction"] == {"Fn::GetAtt": [logical_id(resources, "AWS::Lambda::Function", "FunctionsFinalize"), "Arn"]}
    assert substitutions["SpotJobQueue"] == {"Fn::GetAtt": [only(resources, "AWS::Batch::JobQueue")[0], "JobQueueArn"]}
    # every placeholder is substituted, and nulls survive (a Batch step's ResultPath: null)
    assert set(re.findall(r"\$\{(\w+)\}", properties["DefinitionString"])) == set(substitutions)
    assert deployed["States"]["Tag assets on Spot"]["ResultPath"] is None


def test_every_step_is_caught_and_failures_release_the_endpoint(resources):
    _, machine = only(resources, "AWS::StepFunctions::StateMachine")
    definition = json.loads(machine["Properties"]["DefinitionString"])
    top = definition["States"]
    assert "Scan assets" in state_names(definition) and "Start the bot endpoint" in state_names(definition)
    for name, state in top.items():
        if state["Type"] in ("Task", "Parallel") and not name.startswith(("Release", "Record")):
            assert [c["Next"] for c in state["Catch"]] == ["Release the bot endpoint after a failure"], name
    assert top["Release the bot endpoint after a failure"]["Next"] == "Record the failure"
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


def test_every_api_method_uses_iam_auth_validation_and_the_api_function(resources):
    methods = of_type(resources, "AWS::ApiGateway::Method")
    api_function = logical_id(resources, "AWS::Lambda::Function", "FunctionsApi")
    validator, validator_resource = only(resources, "AWS::ApiGateway::RequestValidator")
    assert validator_resource["Properties"] | {"RestApiId": None} == {
        "RestApiId": None, "ValidateRequestBody": True, "ValidateRequestParameters": True,
    }  # fmt: skip
    assert len(methods) == len(ROUTES)
    for method in methods.values():
        properties = method["Properties"]
        assert properties["AuthorizationType"] == "AWS_IAM"
        assert properties["RequestValidatorId"] == {"Ref": validator}
        assert properties["Integration"]["Type"] == "AWS_PROXY"
        assert api_function in json.dumps(properties["Integration"]["Uri"])
    with_bodies = [m["Properties"] for m in methods.values() if "RequestModels" in m["Properties"]]
    assert sorted(m["HttpMethod"] for m in with_bodies) == ["POST", "POST", "PUT"]
    models = {r["Properties"]["Name"]: r["Properties"]["Schema"] for r in of_type(resources, "AWS::ApiGateway::Model").values()}
    assert models["JobSubmission"]["required"] == ["source", "bot"]
    assert models["JobSubmission"]["additionalProperties"] is False
    assert models["BotRegistration"]["properties"]["runtime"]["enum"] == ["sagemaker-endpoint", "in-container"]


def test_the_api_routes_are_the_handlers_routes():
    from lambdas.api.handler import openapi_document

    document = openapi_document()
    handler_routes = {
        (method.upper(), path): (
            sorted(p["name"] for p in operation.get("parameters", []) if p["in"] == "query"),
            sorted(p["name"].lower() for p in operation.get("parameters", []) if p["in"] == "header"),
            "requestBody" in operation,
        )
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    stack_routes = {
        (route.method, route.path): (sorted(route.query), sorted(h.lower() for h in route.headers), route.body is not None)
        for route in ROUTES
        if route.path != "/openapi.json"
    }
    assert stack_routes == handler_routes


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
    assert machine in json.dumps(allows(policy, "states:StopExecution"))
    assert "execution:" in json.dumps(allows(policy, "states:StopExecution"))


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


def test_work_files_expire_and_the_work_bucket_sends_events(resources):
    work = resources[logical_id(resources, "AWS::S3::Bucket", "StorageWork")]["Properties"]
    rules = {rule["Id"]: rule for rule in work["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-job-work-files"]["Prefix"] == "jobs/" and rules["expire-job-work-files"]["ExpirationInDays"] == 14
    assert work["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}


def test_a_new_model_archive_runs_the_registry_function(resources):
    _, rule = only(resources, "AWS::Events::Rule")
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
    statement = properties["AccessPolicies"]["Statement"]
    assert len(statement) == 1 and "*" not in json.dumps(statement[0]["Principal"])
    principals = {p["Fn::GetAtt"][0] for p in statement[0]["Principal"]["AWS"]}
    expected = {logical_id(resources, "AWS::IAM::Role", name) for name in
                ("ComputeJobRole", "FunctionsScannerServiceRole", "FunctionsEndpointServiceRole",
                 "FunctionsFinalizeServiceRole", "FunctionsApiServiceRole")}  # fmt: skip
    assert principals == expected
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
        assert {"SPOTBOT_OPENSEARCH_ENDPOINT", "SPOTBOT_WORK_BUCKET", "SPOTBOT_REGION", "SPOTBOT_MODELS"} <= set(variables)
        assert variables["SPOTBOT_HOME"].startswith("/tmp/")
    endpoint = functions[logical_id(resources, "AWS::Lambda::Function", "FunctionsEndpoint")]["Environment"]["Variables"]
    assert {"SPOTBOT_SAGEMAKER_ROLE_ARN", "SPOTBOT_SERVING_IMAGE_URI", "SPOTBOT_BUILTIN_BOT_RUNTIME"} <= set(endpoint)
    api = functions[logical_id(resources, "AWS::Lambda::Function", "FunctionsApi")]["Environment"]["Variables"]
    assert {"SPOTBOT_STATE_MACHINE_ARN", "SPOTBOT_BATCH_JOB_QUEUE", "SPOTBOT_JOB_DEFINITIONS", "SPOTBOT_DEFAULT_OUTPUT"} <= set(api)


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
