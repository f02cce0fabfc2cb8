"""The architecture diagram, generated from the synthesized template (never drawn by hand).

    .venv/bin/python -m stacks.diagram                 # synthesizes (offline) and writes docs/architecture.*
    .venv/bin/python -m stacks.diagram cdk.out/SpotTaggingBot.template.json

It walks the template: the resources that make up the architecture become nodes, grouped by the
construct that made them (stacks/*.py), and edges are their references: a solid arrow where one
resource names another in its properties (a Lambda's environment, the state machine's
substitutions, a job queue's compute environments, an API method's integration), a dotted one
where IAM lets one act on another (a role's policy names the resource). Writes Mermaid:
docs/architecture.mmd, and docs/architecture.md wrapping it for renderers of Markdown.
tests/test_stacks.py checks that the committed diagram is the one the current code generates.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCS = REPO_ROOT / "docs"
NODE_TYPES = {
    "AWS::ApiGateway::RestApi": "API Gateway REST API",
    "AWS::Lambda::Function": "Lambda",
    "AWS::Lambda::LayerVersion": "Lambda layer",
    "AWS::StepFunctions::StateMachine": "Step Functions",
    "AWS::Batch::JobQueue": "Batch job queue",
    "AWS::Batch::ComputeEnvironment": "Batch compute env",
    "AWS::Batch::JobDefinition": "Batch job definition",
    "AWS::OpenSearchService::Domain": "OpenSearch domain",
    "AWS::S3::Bucket": "S3 bucket",
    "AWS::Events::Rule": "EventBridge rule",
    "AWS::EC2::VPC": "VPC",
    "AWS::EC2::NatGateway": "NAT gateway",
    "AWS::EC2::VPCEndpoint": "VPC endpoint",
}
PRINCIPAL_ROLE_PROPERTIES = ("Role", "RoleArn", "JobRoleArn")  # how a resource names the role it acts as
SKIPPED_PROPERTIES = {"Tags", "Layers", "LoggingConfig", "VpcConfig", "VPCOptions", "SubnetIds", "LogPublishingOptions"}
LABELS = {  # property that holds the reference -> what the arrow means
    "Environment": "settings",
    "ContainerProperties": "settings",
    "DefinitionSubstitutions": "runs",
    "ComputeEnvironmentOrder": "places jobs on",
    "Targets": "triggers",
    "EventPattern": "on objects in",
    "LoggingConfiguration": "access logs to",
    "VpcId": "in",
}
IMAGE_NODE = "ContainerImage"


def _references(value: Any) -> Iterator[str]:
    """Logical ids a CloudFormation value refers to (Ref, Fn::GetAtt, ${X} in Fn::Sub)."""
    if isinstance(value, dict):
        if "Ref" in value and isinstance(value["Ref"], str):
            yield value["Ref"]
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            yield target[0] if isinstance(target, list) else str(target).split(".")[0]
        for item in value.values():
            yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def _construct_path(resource: dict[str, Any]) -> list[str]:
    path = resource.get("Metadata", {}).get("aws:cdk:path", "")
    parts = path.split("/")[1:]  # without the stack
    return [part for part in parts if part not in ("Resource", "Default")]


def _is_architecture(logical_id: str, resource: dict[str, Any]) -> bool:
    if resource["Type"] not in NODE_TYPES:
        return False
    path = resource.get("Metadata", {}).get("aws:cdk:path", "")
    return bool(path) and "CustomResourceProvider" not in path  # CDK's own helpers (default security group rules)


def _images(assets: dict[str, Any] | None) -> dict[str, str]:
    """Container image asset hash -> its Dockerfile."""
    return {key: image["source"].get("dockerFile", "Dockerfile") for key, image in (assets or {}).get("dockerImages", {}).items()}


def _image_id(dockerfile: str) -> str:
    return IMAGE_NODE + "".join(part.title() for part in dockerfile.replace("/", " ").replace("_", " ").split())


def mermaid(template: dict[str, Any], assets: dict[str, Any] | None = None) -> str:
    resources: dict[str, dict[str, Any]] = template["Resources"]
    nodes = {name: r for name, r in resources.items() if _is_architecture(name, r)}
    images = _images(assets)
    edges: set[tuple[str, str, str, str]] = set()  # (from, to, style, label)

    # who acts as which role
    acts_as: dict[str, set[str]] = {}
    for name, resource in nodes.items():
        for key in PRINCIPAL_ROLE_PROPERTIES:
            for role in _references(resource["Properties"].get(key)):
                acts_as.setdefault(role, set()).add(name)
        container = resource["Properties"].get("ContainerProperties", {})
        for role in _references(container.get("JobRoleArn")):
            acts_as.setdefault(role, set()).add(name)

    for name, resource in nodes.items():
        properties = resource.get("Properties", {})
        for key, value in properties.items():
            if key in PRINCIPAL_ROLE_PROPERTIES or key in SKIPPED_PROPERTIES:
                continue
            for target in set(_references(value)):
                if target in nodes and target != name:
                    edges.add((name, target, "-->", LABELS.get(key, key)))
        text = json.dumps(properties)
        for digest, dockerfile in images.items():
            if digest in text:
                edges.add((name, _image_id(dockerfile), "-->", "image"))
    for name, resource in resources.items():
        kind = resource["Type"]
        properties = resource.get("Properties", {})
        if kind == "AWS::ApiGateway::Method":  # the API's routes go to their integrations
            api = next((t for t in _references(properties.get("RestApiId")) if t in nodes), None)
            for target in _references(properties.get("Integration")):
                if api and target in nodes:
                    edges.add((api, target, "-->", "Lambda proxy"))
        if kind == "AWS::IAM::Policy":  # permissions: the role's users may act on the named resources
            users = {user for role in _references(properties.get("Roles")) for user in acts_as.get(role, ())}
            targets = {t for t in _references(properties["PolicyDocument"]) if t in nodes}
            for user in users:
                for target in targets - {user}:
                    if not any(e[0] == user and e[1] == target for e in edges):
                        edges.add((user, target, "-.->", "IAM"))

    nodes, edges = _merge_alike(nodes, edges, resources)
    groups: dict[str, list[str]] = {}
    for name, resource in sorted(nodes.items()):
        path = _construct_path(resource)
        groups.setdefault(path[0] if path else "Stack", []).append(name)
    lines = ["%% Generated by stacks/diagram.py from the synthesized template. Do not edit by hand.", "flowchart LR"]
    for group, members in sorted(groups.items()):
        lines.append(f"  subgraph {group}")
        for name in members:
            lines.append(f'    {name}["{_label(nodes[name], resources)}"]')
        lines.append("  end")
    if images:
        lines.append("  subgraph Images")
        for dockerfile in sorted(set(images.values())):
            lines.append(f'    {_image_id(dockerfile)}[("ECR image<br/>{dockerfile}")]')
        lines.append("  end")
    for source, target, style, label in sorted(edges):
        lines.append(f"  {source} {style}|{label}| {target}")
    return "\n".join(lines) + "\n"


def _in_vpc(resource: dict[str, Any], resources: dict[str, dict[str, Any]]) -> bool:
    return any(resources.get(t, {}).get("Type") == "AWS::EC2::Subnet" for t in _references(resource.get("Properties")))


def _label(resource: dict[str, Any], resources: dict[str, dict[str, Any]]) -> str:
    names = resource.get("_merged") or ["/".join(_construct_path(resource)[1:]) or _construct_path(resource)[0]]
    kind = NODE_TYPES[resource["Type"]] + (f" ×{len(names)}" if len(names) > 1 else "")
    where = " · in the VPC" if _in_vpc(resource, resources) else ""
    return f"{kind}{where}<br/>{', '.join(names)}"


def _merge_alike(
    nodes: dict[str, dict[str, Any]], edges: set[tuple[str, str, str, str]], resources: dict[str, dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], set[tuple[str, str, str, str]]]:
    """One node for resources of one kind, from one construct, with the same arrows (the job definitions per bot)."""
    def signature(name: str) -> tuple[Any, ...]:
        path = _construct_path(nodes[name])
        outgoing = sorted((t, s, l) for f, t, s, l in edges if f == name)
        incoming = sorted((f, s, l) for f, t, s, l in edges if t == name)
        return (nodes[name]["Type"], path[0] if path else "", tuple(outgoing), tuple(incoming), _in_vpc(nodes[name], resources))

    alike: dict[tuple[Any, ...], list[str]] = {}
    for name in sorted(nodes):
        alike.setdefault(signature(name), []).append(name)
    keep = dict(nodes)
    renamed: dict[str, str] = {}
    for members in alike.values():
        if len(members) < 2:
            continue
        first = members[0]
        keep[first] = {**nodes[first], "_merged": ["/".join(_construct_path(nodes[m])[1:]) for m in members]}
        for other in members[1:]:
            del keep[other]
            renamed[other] = first
    merged = {(renamed.get(f, f), renamed.get(t, t), s, l) for f, t, s, l in edges}
    return keep, merged


def markdown(diagram: str) -> str:
    return (
        "# Architecture\n\n"
        "Generated from the synthesized CloudFormation template by `stacks/diagram.py` "
        "(`make diagram`); do not edit by hand. Solid arrows: one resource names another "
        "(environment, state machine substitutions, queue order, API integration). "
        "Dotted arrows: IAM lets one act on the other.\n\n"
        f"```mermaid\n{diagram}```\n"
    )


def write(diagram: str, docs: Path = DOCS) -> None:
    docs.mkdir(exist_ok=True)
    (docs / "architecture.mmd").write_text(diagram, encoding="utf-8")
    (docs / "architecture.md").write_text(markdown(diagram), encoding="utf-8")


def synthesized_template() -> tuple[dict[str, Any], dict[str, Any]]:
    """The default stack's template and assets manifest, synthesized offline (no pip, no Docker)."""
    from stacks import create_app

    context = json.loads((REPO_ROOT / "cdk.json").read_text(encoding="utf-8"))["context"] | {"bundle_lambdas": False}
    with tempfile.TemporaryDirectory() as outdir:
        app, stack = create_app(context=context, outdir=outdir)
        assembly = app.synth()
        template = assembly.get_stack_by_name(stack.stack_name).template
        assets = json.loads((Path(outdir) / f"{stack.artifact_id}.assets.json").read_text(encoding="utf-8"))
    return template, assets


def main(argv: list[str]) -> int:
    if argv:
        template_path = Path(argv[0])
        template = json.loads(template_path.read_text(encoding="utf-8"))
        assets_path = template_path.with_name(template_path.name.replace(".template.json", ".assets.json"))
        assets = json.loads(assets_path.read_text(encoding="utf-8")) if assets_path.exists() else None
    else:
        template, assets = synthesized_template()
    write(mermaid(template, assets))
    print(f"wrote {DOCS / 'architecture.mmd'} and {DOCS / 'architecture.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
