"""AssetSearch: the OpenSearch domain that holds tasks, tags, jobs and the bot registry.

In the VPC's private subnets, encrypted at rest and in transit (HTTPS only, TLS 1.2,
node-to-node), with slow logs and error logs in CloudWatch. Access is scoped by IAM: the domain's
access policy names exactly the roles granted through `grant_read_write` / `grant_read` (each
also gets the matching identity policy), and its security group admits HTTPS only from the
connectables passed to `allow_from`. No fine-grained access control: every client signs with SigV4
(spotbot's OpenSearch adapter does), so IAM is the one gate.

Least privilege by HTTP verb: `grant_read` gives GET/HEAD (plus POST, which _search and _mget use),
`grant_read_write` adds PUT (index creation, mappings), and only `delete=True` (the job API:
unregistering a bot, cancelling) adds DELETE. The access policy has one statement per verb set.
Audit logs are not published: OpenSearch writes them only with fine-grained access control,
which this IAM-only domain does not enable (its slow and error logs are published).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsii
from aws_cdk import Aws, IStableAnyProducer, Lazy, Names, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_opensearchservice as opensearch
from constructs import Construct

from stacks import nag
from stacks.config import TaggingConfig
from stacks.network import SpotbotNetwork

ENGINE = opensearch.EngineVersion.OPENSEARCH_2_19
READ_ACTIONS = ("es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost")  # POST: _search, _mget, _count
WRITE_ACTIONS = (*READ_ACTIONS, "es:ESHttpPut")
DELETE_ACTIONS = (*WRITE_ACTIONS, "es:ESHttpDelete")


class AssetSearch(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        network: SpotbotNetwork,
        config: TaggingConfig,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
    ) -> None:
        """The domain `config` asks for: its opensearch_instance_type, opensearch_instance_count, opensearch_volume_gb."""
        super().__init__(scope, id)
        vpc, subnets = network.vpc, network.vpc.private_subnets
        zone_awareness = config.zone_awareness
        # named, so the access policy and the logs policy can name the domain without a circular reference
        self.domain_name = f"spotbot-{Names.unique_id(self)[-8:].lower()}"
        domain_arn = Stack.of(self).format_arn(service="es", resource="domain", resource_name=self.domain_name)
        self._principals: dict[tuple[str, ...], list[str]] = {}

        log_groups = {
            kind: logs.LogGroup(self, f"{kind}Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
            for kind in ("SlowSearch", "SlowIndex", "Application")
        }
        # What the domain's own CDK custom resource would do, as a plain CloudFormation resource
        logs_policy = logs.CfnResourcePolicy(
            self,
            "LogsResourcePolicy",
            policy_name=f"{self.domain_name}-logs",
            policy_document=Stack.of(self).to_json_string(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "es.amazonaws.com"},
                            "Action": ["logs:PutLogEvents", "logs:CreateLogStream"],
                            "Resource": [group.log_group_arn for group in log_groups.values()],
                            "Condition": {
                                "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                                "ArnLike": {"aws:SourceArn": domain_arn},
                            },
                        }
                    ],
                }
            ),
        )
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, description="OpenSearch domain: HTTPS from the workers and Lambdas only",
            allow_all_outbound=False,
        )  # fmt: skip
        self.domain = opensearch.Domain(
            self,
            "Domain",
            domain_name=self.domain_name,
            version=ENGINE,
            vpc=vpc,
            vpc_subnets=[ec2.SubnetSelection(subnets=subnets[: 2 if zone_awareness else 1])],
            security_groups=[self.security_group],
            capacity=opensearch.CapacityConfig(
                data_node_instance_type=config.opensearch_instance_type,
                data_nodes=config.opensearch_instance_count,
                multi_az_with_standby_enabled=False,  # standby needs three zones and dedicated masters
            ),
            zone_awareness=opensearch.ZoneAwarenessConfig(enabled=zone_awareness, availability_zone_count=2)
            if zone_awareness
            else opensearch.ZoneAwarenessConfig(enabled=False),
            ebs=opensearch.EbsOptions(volume_size=config.opensearch_volume_gb, volume_type=ec2.EbsDeviceVolumeType.GP3),
            encryption_at_rest=opensearch.EncryptionAtRestOptions(enabled=True),
            node_to_node_encryption=True,
            enforce_https=True,
            tls_security_policy=opensearch.TLSSecurityPolicy.TLS_1_2,
            logging=opensearch.LoggingOptions(
                slow_search_log_enabled=True,
                slow_search_log_group=log_groups["SlowSearch"],
                slow_index_log_enabled=True,
                slow_index_log_group=log_groups["SlowIndex"],
                app_log_enabled=True,
                app_log_group=log_groups["Application"],
            ),
            suppress_logs_resource_policy=True,  # logs_policy above is that policy
            enable_version_upgrade=True,
            removal_policy=RemovalPolicy.DESTROY,  # the tags are in S3 too; a kept domain would keep billing
        )
        self.domain.node.add_dependency(logs_policy)
        cfn_domain: opensearch.CfnDomain = self.domain.node.default_child  # type: ignore[assignment]
        cfn_domain.access_policies = Lazy.any(_Produced(lambda: self._access_policy(domain_arn)))

        nag.acknowledge(
            self.domain,
            "AwsSolutions-OS3",
            "The domain has no public endpoint: it is in private subnets, reachable through its security group, "
            "and its access policy names IAM roles; an IP allowlist adds nothing inside a VPC.",
        )
        nag.acknowledge(
            self.domain,
            "AwsSolutions-OS4",
            "Dedicated master nodes triple the cost of a small tagging index; the data nodes are zone-aware "
            "and the tags can be rebuilt from the JSON Lines in S3.",
        )
        if not zone_awareness:
            nag.acknowledge(
                self.domain,
                "AwsSolutions-OS7",
                "opensearch_instance_count=1 was asked for (a single-node domain cannot be zone-aware).",
            )

    def _access_policy(self, domain_arn: str) -> dict | None:
        if not self._principals:
            return None
        return {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": list(principals)}, "Action": list(actions), "Resource": f"{domain_arn}/*"}
                for actions, principals in self._principals.items()
            ],
        }

    @property
    def endpoint_url(self) -> str:
        return f"https://{self.domain.domain_endpoint}"

    @property
    def dashboards_url(self) -> str:
        return f"https://{self.domain.domain_endpoint}/_dashboards"

    def allow_from(self, *clients: ec2.IConnectable) -> None:
        for client in clients:
            self.domain.connections.allow_default_port_from(client, "HTTPS to OpenSearch")

    def grant_read_write(self, grantee: iam.IGrantable, *, delete: bool = False) -> iam.Grant:
        """Index, update and search; `delete`: also delete documents and indices (the job API only)."""
        return self._grant(grantee, DELETE_ACTIONS if delete else WRITE_ACTIONS)

    def grant_read(self, grantee: iam.IGrantable) -> iam.Grant:
        return self._grant(grantee, READ_ACTIONS)

    def _grant(self, grantee: iam.IGrantable, actions: tuple[str, ...]) -> iam.Grant:
        role_arn = getattr(grantee.grant_principal, "role_arn", None)
        if role_arn is None:
            raise TypeError("the domain's access policy names IAM roles: grant to a role or a function with one")
        self._principals.setdefault(actions, []).append(role_arn)
        nag.acknowledge_wildcards(
            grantee,
            "OpenSearch HTTP paths (indices, _bulk, _search) of this one domain; the index names are made at run time.",
            resources=[f"{self.domain.domain_arn}/*"],
        )
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=list(actions), resource_arns=[self.domain.domain_arn, f"{self.domain.domain_arn}/*"]
        )


@jsii.implements(IStableAnyProducer)
class _Produced:
    """A value computed at synthesis, after every grant has been made."""

    def __init__(self, produce: Callable[[], Any]) -> None:
        self._produce = produce

    def produce(self) -> Any:
        return self._produce()
