#!/usr/bin/env python3
"""The CDK app: `npx cdk synth | deploy | destroy` run this (cdk.json). Parameters: -c name=value (README)."""

from stacks import create_app

app, _ = create_app()
app.synth()
