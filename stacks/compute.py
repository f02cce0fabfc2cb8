"""SpotCompute: AWS Batch on EC2 Spot, where the workers (batch_jobs/worker.py) tag one shard each.

- A managed EC2 compute environment on Spot, SPOT_PRICE_CAPACITY_OPTIMIZED, over the instance
  families in `instance_types` (plus a GPU family when asked), scaling from 0 to `max_vcpus`.
- An on-demand environment behind it in the same job queue (order 2): Batch places jobs there once
  the Spot environment is at its maximum. With `spot=False` the first environment is on-demand itself.
- One job definition per bot (`bots`) and a "*" one for every other bot, all running the worker
  image, with the retry strategy the worker's exit codes are made for: retry when the instance was
  reclaimed (status reason `Host EC2*`) or the worker hit a transient failure (exit code 1; shards
  are idempotent), exit on anything else (2: misconfigured, 143: terminated); and an attempt timeout.
- A launch template for the instances: Spot instance draining on (on the two-minute notice the ECS
  agent marks the instance DRAINING, so no new shard starts on it) and a container stop timeout
  covering one micro-batch (SPOT_STOP_TIMEOUT_SECONDS: SIGTERM to SIGKILL, so the worker's SIGTERM
  path flushes its batch before the instance goes); IMDSv2 only with a hop limit of 1, so job
  containers (bridge network) cannot reach the instance role's credentials.
- The job queue cancels jobs stuck RUNNABLE: when no instance can ever fit them (10 minutes) or
  Spot and on-demand capacity stays short (`runnable_timeout_minutes`). Jobs waiting only because the
  environments are at their vCPU maximum are left waiting: that is how a large array job runs.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Size, Stack
from aws_cdk import aws_batch as batch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks import nag
from stacks.bundling import repository_image
from stacks.config import TaggingConfig
from stacks.constants import DEFAULT_JOB_DEFINITION, JOB_TAG, SPOT_STOP_TIMEOUT_SECONDS, WORKER_DOCKERFILE
from stacks.network import SpotbotNetwork

THREADS_VARIABLE = "SPOTBOT_THREADS"  # read by batch_jobs/worker.py itself (not a Settings field): threads per worker
TRANSIENT_EXIT_CODE = "1"  # batch_jobs/worker.py: an unexpected error; the shard is idempotent, so try again
MISFIT_TIMEOUT = Duration.minutes(10)  # a job no instance type can hold never will be placed


def worker_retry_strategies() -> list[batch.RetryStrategy]:
    """Spot reclaims and transient worker failures are retried; misconfiguration (2) and cancels (143) are not."""
    return [
        batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.custom(on_status_reason="Host EC2*")),
        batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.custom(on_exit_code=TRANSIENT_EXIT_CODE)),
        batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom(on_reason="*")),
    ]


def spot_draining_user_data(stop_timeout_seconds: int = SPOT_STOP_TIMEOUT_SECONDS) -> ec2.UserData:
    """ECS agent settings, as the MIME multi-part user data AWS Batch merges into its own."""
    commands = ec2.UserData.for_linux()
    commands.add_commands(
        "echo ECS_ENABLE_SPOT_INSTANCE_DRAINING=true >> /etc/ecs/ecs.config",
        f"echo ECS_CONTAINER_STOP_TIMEOUT={stop_timeout_seconds}s >> /etc/ecs/ecs.config",
    )
    user_data = ec2.MultipartUserData()
    user_data.add_user_data_part(commands, ec2.MultipartBody.SHELL_SCRIPT, True)
    return user_data


class SpotCompute(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: TaggingConfig,
        network: SpotbotNetwork,
        environment: dict[str, str],
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
    ) -> None:
        """The Spot compute `config` asks for (its max_vcpus, instance_types, spot, worker_* ... fields)."""
        super().__init__(scope, id)
        vpc, subnets = network.vpc, network.private_subnets
        spot, gpu_instance_family = config.spot, config.gpu_instance_family
        runnable_timeout = Duration.minutes(config.runnable_timeout_minutes)
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, description="Spot workers: out to S3, OpenSearch, ECR and SageMaker",
            allow_all_outbound=True,
        )  # fmt: skip
        classes, types = instance_choice((*config.instance_types, *([gpu_instance_family] if gpu_instance_family else [])))
        images = [batch.EcsMachineImage(image_type=batch.EcsMachineImageType.ECS_AL2023)]
        if gpu_instance_family:  # Batch picks the NVIDIA AMI for the GPU instances, the plain one for the rest
            images.append(batch.EcsMachineImage(image_type=batch.EcsMachineImageType.ECS_AL2023_NVIDIA))
        self.launch_template = ec2.LaunchTemplate(
            self,
            "WorkerLaunchTemplate",
            user_data=spot_draining_user_data(),
            require_imdsv2=True,
            http_tokens=ec2.LaunchTemplateHttpTokens.REQUIRED,
            http_put_response_hop_limit=1,  # the host only: containers are one hop further
        )

        first = batch.ManagedEc2EcsComputeEnvironment(
            self,
            "Spot" if spot else "OnDemand",
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[self.security_group],
            spot=spot,
            allocation_strategy=batch.AllocationStrategy.SPOT_PRICE_CAPACITY_OPTIMIZED
            if spot
            else batch.AllocationStrategy.BEST_FIT_PROGRESSIVE,
            use_optimal_instance_classes=False,
            instance_classes=classes,
            instance_types=types,
            images=images,
            launch_template=self.launch_template,
            minv_cpus=0,  # nothing runs, nothing bills
            maxv_cpus=config.max_vcpus,
            update_to_latest_image_version=True,
        )
        self.compute_environments: list[batch.ManagedEc2EcsComputeEnvironment] = [first]
        if spot and config.on_demand_max_vcpus > 0:
            self.compute_environments.append(
                batch.ManagedEc2EcsComputeEnvironment(
                    self,
                    "OnDemandFallback",
                    vpc=vpc,
                    vpc_subnets=subnets,
                    security_groups=[self.security_group],
                    spot=False,
                    allocation_strategy=batch.AllocationStrategy.BEST_FIT_PROGRESSIVE,
                    use_optimal_instance_classes=False,
                    instance_classes=classes,
                    instance_types=types,
                    images=images,
                    launch_template=self.launch_template,
                    minv_cpus=0,
                    maxv_cpus=config.on_demand_max_vcpus,
                    update_to_latest_image_version=True,
                )
            )
        for environment_ in self.compute_environments:
            nag.acknowledge_managed_policy(
                environment_,
                "service-role/AmazonEC2ContainerServiceforEC2Role",
                "The ECS container-instance policy AWS Batch documents for the instances it launches "
                "(register with the ECS cluster, pull images, write logs).",
            )
        self.job_queue = batch.JobQueue(
            self,
            "JobQueue",
            priority=1,
            compute_environments=[
                batch.OrderedComputeEnvironment(compute_environment=environment_, order=order)
                for order, environment_ in enumerate(self.compute_environments, start=1)
            ],
            job_state_time_limit_actions=[
                batch.JobStateTimeLimitAction(
                    max_time=MISFIT_TIMEOUT, reason=batch.JobStateTimeLimitActionsReason.JOB_RESOURCE_REQUIREMENT,
                    action=batch.JobStateTimeLimitActionsAction.CANCEL,
                ),
                batch.JobStateTimeLimitAction(
                    max_time=runnable_timeout, reason=batch.JobStateTimeLimitActionsReason.INSUFFICIENT_INSTANCE_CAPACITY,
                    action=batch.JobStateTimeLimitActionsAction.CANCEL,
                ),
            ],  # fmt: skip
        )

        self.image = repository_image(self, "WorkerImage", dockerfile=WORKER_DOCKERFILE)
        self.job_role = iam.Role(
            self, "JobRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="What a Spot worker may do: read assets, write tags, read models",
        )  # fmt: skip
        self.log_group = logs.LogGroup(self, "WorkerLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
        self.execution_role = iam.Role(
            self, "ExecutionRole", assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="Pulls the worker image and writes the worker's logs",
        )  # fmt: skip
        self.image.repository.grant_pull(self.execution_role)
        self.log_group.grant_write(self.execution_role)
        nag.acknowledge(
            self.execution_role,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken (logging in to ECR before pulling the worker image) accepts no resource scope.",
        )

        self.job_definitions: dict[str, batch.EcsJobDefinition] = {}
        for name in (*config.bots, DEFAULT_JOB_DEFINITION):
            gpus = 1 if name in config.gpu_bots else None
            container = batch.EcsEc2ContainerDefinition(
                self,
                f"{_id_of(name)}Container",
                image=ecs.ContainerImage.from_docker_image_asset(self.image),
                cpu=config.worker_vcpus,
                memory=Size.mebibytes(config.worker_memory_mib),
                gpu=gpus,
                environment={**environment, THREADS_VARIABLE: str(config.worker_vcpus)},
                job_role=self.job_role,
                execution_role=self.execution_role,
                logging=ecs.LogDriver.aws_logs(stream_prefix=_id_of(name).lower(), log_group=self.log_group),
            )
            self.job_definitions[name] = batch.EcsJobDefinition(
                self,
                f"{_id_of(name)}JobDefinition",
                container=container,
                retry_attempts=config.worker_retry_attempts,
                retry_strategies=worker_retry_strategies(),
                timeout=Duration.minutes(config.worker_attempt_timeout_minutes),  # per attempt: a stuck worker is stopped, its job fails, the state machine's Catch records it
                propagate_tags=True,
            )

    @property
    def job_tag(self) -> dict[str, str]:
        """The tag the state machine puts on every Batch job it submits: what TerminateJob is held to."""
        return {JOB_TAG: Stack.of(self).stack_name}

    def grant_submit(self, grantee: iam.IGrantable) -> iam.Grant:
        """SubmitJob (tagged) on this queue with these job definitions, and TerminateJob and DescribeJobs
        on this stack's jobs: what `batch:submitJob.sync` needs (it terminates when an execution stops)."""
        jobs = self._jobs_arn
        stack_tag = {f"aws:RequestTag/{JOB_TAG}": Stack.of(self).stack_name}
        grant = iam.Grant.add_to_principal(
            grantee=grantee, actions=["batch:TagResource"], resource_arns=[jobs],  # tags given to SubmitJob
            conditions={"StringEquals": stack_tag, "ForAllValues:StringEquals": {"aws:TagKeys": [JOB_TAG]}},
        )  # fmt: skip
        for definition in self.job_definitions.values():
            definition.grant_submit_job(grantee, self.job_queue)  # returns no Grant (aws-batch's L2)
        grant = grant.combine(self._grant_terminate(grantee))
        nag.acknowledge_wildcards(
            grantee, "Tagging a Batch job as it is submitted; job ids are made by SubmitJob.", resources=[jobs]
        )
        return grant.combine(iam.Grant.add_to_principal(grantee=grantee, actions=["batch:DescribeJobs"], resource_arns=["*"]))

    def grant_find_jobs(self, grantee: iam.IGrantable) -> iam.Grant:
        """Find a job's Batch jobs on the queue: listed, then described (to match the job id, to read each attempt)."""
        return iam.Grant.add_to_principal(grantee=grantee, actions=["batch:ListJobs", "batch:DescribeJobs"], resource_arns=["*"])

    def grant_list_and_terminate(self, grantee: iam.IGrantable) -> iam.Grant:
        """Find a job's Batch jobs and terminate them (the job API's cancel)."""
        return self.grant_find_jobs(grantee).combine(self._grant_terminate(grantee))

    @property
    def _jobs_arn(self) -> str:
        return Stack.of(self).format_arn(service="batch", resource="job", resource_name="*")

    def _grant_terminate(self, grantee: iam.IGrantable) -> iam.Grant:
        grant = iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["batch:TerminateJob"],
            resource_arns=[self._jobs_arn],
            conditions={"StringEquals": {f"aws:ResourceTag/{JOB_TAG}": Stack.of(self).stack_name}},
        )
        nag.acknowledge_wildcards(
            grantee,
            f"batch:TerminateJob on Batch jobs tagged {JOB_TAG}=<this stack> only; their ids are made at submission.",
            resources=[self._jobs_arn],
        )
        return grant

    @property
    def job_definition_arns(self) -> dict[str, str]:
        """SPOTBOT_JOB_DEFINITIONS: bot -> job definition ARN, "*" for every other bot."""
        return {name: definition.job_definition_arn for name, definition in self.job_definitions.items()}


def instance_choice(names: tuple[str, ...]) -> tuple[list[ec2.InstanceClass], list[ec2.InstanceType]]:
    """Families ("c6i": Batch picks the size) and exact types ("c6i.xlarge") from the `instance_types` context."""
    classes: list[ec2.InstanceClass] = []
    types: list[ec2.InstanceType] = []
    for name in names:
        if "." in name:
            types.append(ec2.InstanceType(name))
            continue
        family = getattr(ec2.InstanceClass, name.upper().replace("-", "_"), None)
        if family is None:
            raise ValueError(f"instance_types: {name!r} is neither an EC2 instance family (c6i) nor a type (c6i.large)")
        classes.append(family)
    return classes, types


def _id_of(bot: str) -> str:
    return "Default" if bot == DEFAULT_JOB_DEFINITION else "".join(part.title() for part in bot.split("-"))
