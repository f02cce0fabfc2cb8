"""SpotbotNetwork: the VPC the workers, the Lambdas and the search domain share, created or imported.

Created: two zones, public subnets for the NAT gateway(s), private subnets with egress for
everything else, flow logs to the access-log bucket, and an S3 gateway endpoint so that asset reads
(the bulk of the traffic) bypass the NAT. Imported (`vpc_id`): by attributes, with no lookup, so
synthesis needs no AWS credentials; its private subnets need a route to a NAT (or endpoints).
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.config import TaggingConfig


class SpotbotNetwork(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        flow_logs_bucket: s3.IBucket,
        config: TaggingConfig,
    ) -> None:
        """The VPC `config` asks for: created, or imported by its vpc_id, vpc_private_subnet_ids and vpc_availability_zones."""
        super().__init__(scope, id)
        vpc_id = config.vpc_id
        self.created = vpc_id is None
        if vpc_id is not None:
            self.vpc: ec2.IVpc = ec2.Vpc.from_vpc_attributes(
                self,
                "Vpc",
                vpc_id=vpc_id,
                availability_zones=list(config.vpc_availability_zones),
                private_subnet_ids=list(config.vpc_private_subnet_ids),
            )
            Validations.of(self).acknowledge(
                Acknowledgment(
                    id="@aws-cdk/aws-ec2:noSubnetRouteTableId",
                    reason="The stack adds no routes to the imported subnets, so it never needs their route tables.",
                )
            )
            return
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=config.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20),
            ],
            gateway_endpoints={"S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)},
            flow_logs={
                "ToS3": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_s3(flow_logs_bucket, "vpc-flow-logs/"),
                    traffic_type=ec2.FlowLogTrafficType.REJECT,
                )
            },
        )

    @property
    def private_subnets(self) -> ec2.SubnetSelection:
        if self.created:
            return ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        return ec2.SubnetSelection(subnets=self.vpc.private_subnets)
