# Two commands a new user needs: `make demo` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the CDK CLI pinned in package.json (aws-cdk 2.1148.1): npx cdk synth | deploy | destroy
NODE_STAMP := node_modules/.installed

.PHONY: setup browser demo test bench synth diagram clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[test,cloud,export,cdk,ui,media,inventory]"
	$(BIN)/python -m pip check
	$(BIN)/spotbot models build  # the car-model backbone, exported once to ONNX into the model store
	touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

setup: $(STAMP) $(NODE_STAMP)

## Tag the bundled samples with each built-in bot, then show the results.
demo: $(STAMP)  # no Node needed to tag locally
	rm -rf .spotbot-demo demo-output
	SPOTBOT_HOME=.spotbot-demo $(BIN)/spotbot tag samples --bot scene-text --out demo-output --job-id demo-scene-text
	SPOTBOT_HOME=.spotbot-demo $(BIN)/spotbot tag samples/reviews --bot sentiment --out demo-output --job-id demo-sentiment
	SPOTBOT_HOME=.spotbot-demo $(BIN)/spotbot tag samples/photos --bot car-model --out demo-output --job-id demo-car-model
	SPOTBOT_HOME=.spotbot-demo $(BIN)/spotbot search --job demo-scene-text --limit 20
	SPOTBOT_HOME=.spotbot-demo $(BIN)/spotbot search --job demo-sentiment --limit 20
	SPOTBOT_HOME=.spotbot-demo $(BIN)/spotbot search --job demo-car-model --limit 20
	SPOTBOT_HOME=.spotbot-demo $(BIN)/spotbot search 合同编号  # a PDF: the text-layer page
	SPOTBOT_HOME=.spotbot-demo $(BIN)/spotbot search 感谢观看  # a video: the time the slide shows
	@echo "JSON Lines: demo-output/<job_id>/part-*.jsonl   Try: SPOTBOT_HOME=.spotbot-demo $(BIN)/spotbot search 欢迎光临"

## Chromium for the browser tests: apt-get installs it when missing and root; otherwise those tests skip, saying why.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && apt-get install -y -qq chromium chromium-driver \
			|| echo "chromium could not be installed: tests/test_ui_browser.py will skip"; \
	else echo "no /usr/bin/chromium and not root: tests/test_ui_browser.py will skip (apt-get install chromium chromium-driver)"; fi

## Run the test suite (CI runs exactly this, through .ci/run).
test: setup browser
	# the Lambda layer is built as cdk deploy builds it (pip for the Lambda platform) and each handler imported from it;
	# two processes, a test file each at a time (a file's fixtures start its servers once): 2 min 28 s to 3 min 45 s on a fresh clone here, as the machine is busy
	SPOTBOT_TEST_LAYER_BUILD=1 $(BIN)/python -m pytest -n 2 --dist loadfile

## Benchmarks: figures, not pass/fail.
bench: setup
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/bots.py
	$(BIN)/python bench/ui.py

## Synthesize the AWS stack into cdk.out (pip-installs the Lambda layer; add SYNTH_ARGS="-c bundle_lambdas=false" offline).
synth: setup
	npx cdk synth --quiet $(SYNTH_ARGS)

## Regenerate docs/architecture.mmd and .md from the synthesized template.
diagram: setup
	$(BIN)/python -m stacks.diagram

clean:
	rm -rf $(VENV) .spotbot-demo demo-output .pytest_cache node_modules cdk.out
