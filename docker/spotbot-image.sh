#!/bin/sh
# The setup steps the three images share (batch_jobs/, bots/ and training/Dockerfile), each said once.
# Each Dockerfile COPYs this script in, so each still builds on its own from the repository root.
#   spotbot-image system          the libraries opencv needs at import time (rapidocr-onnxruntime pulls it in)
#   spotbot-image torch           torch for CPU, at the version pyproject.toml's `export` extra pins
#   spotbot-image install [EXTRA] the project in the current folder, with one extra
#   spotbot-image models DIR      export car-model's backbone to ONNX (torch: build stages only) as a packaged version
#   spotbot-image user            the unprivileged user the images run as (uid 10001)
set -eu
export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
step="${1:?a step: system, torch, install, models or user}"
case "$step" in
  system)
    apt-get update
    apt-get install -y --no-install-recommends libgl1 libglib2.0-0
    rm -rf /var/lib/apt/lists/* ;;
  torch)
    # PyPI's torch is the CUDA build (gigabytes of GPU libraries); +cpu satisfies the same pin
    pin=$(python -c 'import tomllib; extra = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["export"]; print(next(r for r in extra if r.startswith("torch==")))')
    pip install --index-url https://download.pytorch.org/whl/cpu "$pin" ;;
  install)
    pip install ".${2:+[$2]}"
    rm -rf build ./*.egg-info ;;
  models)
    "$0" install export
    spotbot models build --models "${2:?the folder to write the exported versions to}" ;;
  user)
    useradd --system --create-home --uid 10001 --shell /usr/sbin/nologin spotbot ;;
  *)
    echo "spotbot-image: unknown step $step" >&2
    exit 2 ;;
esac
