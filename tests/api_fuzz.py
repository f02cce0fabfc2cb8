"""Fuzz the job API from its own OpenAPI document with schemathesis, through the proxy-event WSGI shim.

Each operation gets `examples` valid requests (positive mode) and `examples` invalid ones (negative
mode), seeded, against whatever `cloud` the handler is wired to. A request fails when it is answered
with a 5xx, with a status the document does not list for it, with a body that does not match the
document, or (negative mode) with a 2xx to a request the document says is invalid. Failures are
collected, not raised, so one run gives the figures; `tests/test_api_fuzz.py` asserts there are none,
and `python -m tests.api_fuzz --examples 400` is the larger run.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, seed
from hypothesis.errors import Unsatisfiable
from hypothesis import settings as hypothesis_settings
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi import checks as openapi_checks

from lambdas.api.handler import openapi_document
from tests.api_gateway import wsgi_app

CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
]
NEGATIVE_CHECKS = [*CHECKS, openapi_checks.negative_data_rejection]


@dataclass
class Figures:
    requests: int = 0
    server_errors: int = 0
    mismatches: int = 0
    statuses: collections.Counter = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)  # one line per failed request: check, operation, curl

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "server_errors": self.server_errors,
            "mismatches": self.mismatches,
            "statuses": dict(sorted(self.statuses.items())),
        }


def fuzz(examples: int = 20, fuzz_seed: int = 10) -> Figures:
    """Runs every operation of the document in both modes; the figures and each failure."""
    figures = Figures()
    schema = schemathesis.openapi.from_dict(openapi_document())
    for result in schema.get_all_operations():
        operation = result.ok()
        for example in schema.get_strategies_from_examples(operation):  # the document's examples, varied
            _run(operation, GenerationMode.POSITIVE, max(1, examples // 5), fuzz_seed, figures, example)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _run(operation, mode, examples, fuzz_seed, figures, operation.as_strategy(generation_mode=mode))
    return figures


def _run(operation: Any, mode: GenerationMode, examples: int, fuzz_seed: int, figures: Figures, strategy: Any) -> None:
    checks = NEGATIVE_CHECKS if mode == GenerationMode.NEGATIVE else CHECKS

    @seed(fuzz_seed)
    @hypothesis_settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: failures are collected, not raised
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def one(case: Any) -> None:
        response = case.call(app=wsgi_app)
        figures.requests += 1
        figures.statuses[response.status_code] += 1
        if response.status_code >= 500:
            figures.server_errors += 1
        try:
            case.validate_response(response, checks=checks)
        except FailureGroup as failed:
            figures.mismatches += 1
            names = sorted({type(failure).__name__ for failure in failed.exceptions})
            curl = case.as_curl_command()
            figures.failures.append(f"{mode.value} {operation.label} -> {response.status_code} {names}: {curl[:600]}")

    try:
        one()
    except Unsatisfiable:
        pass  # nothing to make invalid (GET /bots has no parameters): the positive run covers it


def main(argv: list[str] | None = None) -> int:
    """A larger run against moto and osmem: the same test with more examples; it prints the figures as JSON."""
    parser = argparse.ArgumentParser(description="Fuzz the job API from its OpenAPI document")
    parser.add_argument("--examples", type=int, default=400, help="requests per operation and mode")
    parser.add_argument("--seed", type=int, default=10)
    args = parser.parse_args(argv)
    os.environ["SPOTBOT_FUZZ_EXAMPLES"], os.environ["SPOTBOT_FUZZ_SEED"] = str(args.examples), str(args.seed)
    import pytest

    return pytest.main(["tests/test_api_fuzz.py", "-q", "-p", "no:cacheprovider", "-p", "no:logging", "-s", "-o", "timeout=0"])


if __name__ == "__main__":
    sys.exit(main())
