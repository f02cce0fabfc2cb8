"""The job API fuzzed from its own OpenAPI document (schemathesis, seeded, bounded): no 5xx, every answer as documented.

`python -m tests.api_fuzz --examples 400` runs the same with more requests and prints the figures.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.api_fuzz import fuzz
from tests.api_gateway import aws, cloud, settings  # noqa: F401 -- fixtures

pytestmark = pytest.mark.filterwarnings("ignore")  # Powertools' empty-metrics and multipart warnings, per request


def test_fuzzed_requests_get_no_5xx_and_only_documented_answers(cloud):
    # the document's own examples name these: granting them lets valid requests reach the deeper paths
    cloud.settings = cloud.settings.model_copy(update={"source_buckets": ["assets", "my-assets"]})
    examples = int(os.environ.get("SPOTBOT_FUZZ_EXAMPLES", "15"))
    figures = fuzz(examples=examples, fuzz_seed=int(os.environ.get("SPOTBOT_FUZZ_SEED", "10")))
    print("\nfuzz figures:", json.dumps(figures.summary()))
    assert figures.requests >= examples * 10  # ten operations, both modes: the run really ran
    assert figures.server_errors == 0, "\n".join(figures.failures[:20])
    assert figures.failures == [], "\n".join(figures.failures[:20])
    assert any(status >= 400 for status in figures.statuses) and any(status < 300 for status in figures.statuses)
