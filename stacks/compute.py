"""SpotCompute: AWS Batch on EC2 Spot, where the workers (batch_jobs/worker.py) tag one shard each.

- A managed EC2 compute environment on Spot, SPOT_PRICE_CAPACITY_OPTIMIZED, over the instance
  families in `instance_types` (plus a GPU family when asked), scaling from 0 to `max_vcpus`.
- An on-demand environment behind it in the same job queue (order 2): Batch places jobs there once
  the Spot environment is at its maximum. With `spot=False` the first environment is on-demand itself.
- One job definition per bot (`bots`) and a "*" one for every other bot, all running the worker
  image, with the retry strategy the worker's exit codes are made for: retry when the instance was
  reclaimed (status reason `Host EC2*`), exit on anything else; and an attempt timeout.
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

DEFAULT_DEFINITION = "*"  # spotbot.jobs.job_definition_for: the job definition of bots without their own
WORKER_DOCKERFILE = "batch_jobs/Dockerfile"
WORKER_COPIES = ("pyproject.toml", "README.md", "spotbot", "bots", "batch_jobs")  # what the Dockerfile COPYs


def worker_retry_strategies() -> list[batch.RetryStrategy]:
    """Spot reclaims are retried; the worker's own failures (exit 1, 2, 143 after a TerminateJob) are not."""
    return [
        batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.custom(on_status_reason="Host EC2*")),
        batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom(on_reason="*")),
    ]


class SpotCompute(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        environment: dict[str, str],
        bots: tuple[str, ...],
        instance_types: tuple[str, ...],
        max_vcpus: int = 256,
        spot: bool = True,
        on_demand_max_vcpus: int = 32,
        gpu_instance_family: str | None = None,
        gpu_bots: tuple[str, ...] = (),
        worker_vcpus: int = 2,
        worker_memory_mib: int = 4096,
        attempt_timeout: Duration = Duration.hours(2),
        retry_attempts: int = 3,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
    ) -> None:
        super().__init__(scope, id)
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, description="Spot workers: out to S3, OpenSearch, ECR and SageMaker",
            allow_all_outbound=True,
        )  # fmt: skip
        classes, types = instance_choice((*instance_types, *([gpu_instance_family] if gpu_instance_family else [])))
        images = [batch.EcsMachineImage(image_type=batch.EcsMachineImageType.ECS_AL2023)]
        if gpu_instance_family:  # Batch picks the NVIDIA AMI for the GPU instances, the plain one for the rest
            images.append(batch.EcsMachineImage(image_type=batch.EcsMachineImageType.ECS_AL2023_NVIDIA))

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
            minv_cpus=0,  # nothing runs, nothing bills
            maxv_cpus=max_vcpus,
            update_to_latest_image_version=True,
        )
        self.compute_environments: list[batch.ManagedEc2EcsComputeEnvironment] = [first]
        if spot and on_demand_max_vcpus > 0:
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
                    minv_cpus=0,
                    maxv_cpus=on_demand_max_vcpus,
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
        )

        self.image = repository_image(self, "WorkerImage", dockerfile=WORKER_DOCKERFILE, copies=WORKER_COPIES)
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
        for name in (*bots, DEFAULT_DEFINITION):
            gpus = 1 if name in gpu_bots else None
            container = batch.EcsEc2ContainerDefinition(
                self,
                f"{_id_of(name)}Container",
                image=ecs.ContainerImage.from_docker_image_asset(self.image),
                cpu=worker_vcpus,
                memory=Size.mebibytes(worker_memory_mib),
                gpu=gpus,
                environment={**environment, "SPOTBOT_THREADS": str(worker_vcpus)},
                job_role=self.job_role,
                execution_role=self.execution_role,
                logging=ecs.LogDriver.aws_logs(stream_prefix=_id_of(name).lower(), log_group=self.log_group),
            )
            self.job_definitions[name] = batch.EcsJobDefinition(
                self,
                f"{_id_of(name)}JobDefinition",
                container=container,
                retry_attempts=retry_attempts,
                retry_strategies=worker_retry_strategies(),
                timeout=attempt_timeout,  # per attempt: a stuck worker is stopped, its job fails, the state machine's Catch records it
                propagate_tags=True,
            )

    def grant_submit(self, grantee: iam.IGrantable) -> None:
        """SubmitJob on this queue with each of these job definitions (the state machine's Batch steps)."""
        for definition in self.job_definitions.values():
            definition.grant_submit_job(grantee, self.job_queue)

    def grant_list_and_terminate(self, role: iam.IRole) -> None:
        """Find a job's Batch jobs on the queue and terminate them (the job API's cancel)."""
        jobs = Stack.of(self).format_arn(service="batch", resource="job", resource_name="*")
        role.add_to_principal_policy(iam.PolicyStatement(actions=["batch:ListJobs"], resources=["*"]))
        role.add_to_principal_policy(iam.PolicyStatement(actions=["batch:TerminateJob"], resources=[jobs]))
        nag.acknowledge_wildcards(
            role,
            "batch:TerminateJob on this account's Batch jobs: their ids are made when the state machine submits them.",
            resources=[jobs],
        )

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
    return "Default" if bot == DEFAULT_DEFINITION else "".join(part.title() for part in bot.split("-"))
