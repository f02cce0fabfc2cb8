"""cdk-nag acknowledgements, each with its reason, named the way cdk-nag names its findings.

cdk-nag 3 reports through CDK's policy validation (`Validations.of(app).add_plugins(...)`, report in
`cdk.out/validation-report.json`) and takes acknowledgements through `Validations.of(x).acknowledge`.
An IAM5 (wildcard) finding is one per wildcard: `AwsSolutions-IAM5[Resource::<Bucket1234.Arn>/*]`.
The ids here are built from the very tokens the grant used, resolved and flattened as cdk-nag does,
so they follow the logical ids instead of spelling them out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import IConstruct

# the wildcard actions of CDK's S3 grants (Bucket.grant_read / grant_put / grant_read_write)
S3_READ_ACTIONS = ("s3:GetObject*", "s3:GetBucket*", "s3:List*")
S3_WRITE_ACTIONS = ("s3:DeleteObject*", "s3:Abort*")
S3_PUT_ACTIONS = ("s3:Abort*",)


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """One finding of one rule (`AwsSolutions-S1`, or `AwsSolutions-IAM5[Action::s3:List*]`) on scope and below."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def acknowledge_wildcards(
    scope: IConstruct, reason: str, *, actions: Iterable[str] = (), resources: Iterable[Any] = ()
) -> None:
    """IAM5 findings for these wildcard actions and resources (tokens welcome: `f"{bucket.bucket_arn}/*"`)."""
    stack = Stack.of(scope)
    for action in actions:
        acknowledge(scope, f"AwsSolutions-IAM5[Action::{action}]", reason)
    for resource in resources:
        acknowledge(scope, f"AwsSolutions-IAM5[Resource::{flatten(stack.resolve(resource))}]", reason)


def acknowledge_managed_policy(scope: IConstruct, policy_name: str, reason: str) -> None:
    """IAM4: an AWS managed policy, e.g. `service-role/AWSLambdaBasicExecutionRole`."""
    acknowledge(scope, f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{policy_name}]", reason)


def flatten(node: Any) -> str:
    """A resolved CloudFormation value as cdk-nag writes it in finding ids (utils/flatten-cfn-reference)."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return delimiter.join(flatten(item) for item in items)
        if "Fn::Sub" in node:
            return flatten(node["Fn::Sub"])
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{flatten(resource)}.{flatten(attribute)}>"
        if "Fn::ImportValue" in node:
            return flatten(node["Fn::ImportValue"])
        if "Ref" in node:
            return f"<{flatten(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"))
