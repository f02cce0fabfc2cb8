"""The CDK app of Spot Tagging Bot: constructs, one per file, and the stack that composes them."""

from __future__ import annotations

from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from stacks.config import TaggingConfig
from stacks.tagging_stack import TaggingStack


def create_app(context: dict[str, Any] | None = None, outdir: str | None = None) -> tuple[App, TaggingStack]:
    """The app with its one stack, checked by cdk-nag's AwsSolutions pack at synthesis.

    Unacknowledged findings fail the synthesis; the report is `<outdir>/validation-report.json`.
    """
    # path metadata on every resource: construct paths in cdk-nag's findings and in stacks/diagram.py
    app = App(context={"aws:cdk:enable-path-metadata": True, **(context or {})}, outdir=outdir)
    config = TaggingConfig.from_context(app.node)
    stack = TaggingStack(app, config.stack_name, config=config)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack
