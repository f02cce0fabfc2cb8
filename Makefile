# Two commands a new user needs: `make demo` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[test,cloud,export]"
	$(BIN)/python -m pip check
	$(BIN)/spotbot models build  # the car-model backbone, exported once to ONNX into the model store
	touch $(STAMP)

setup: $(STAMP)

## Tag the bundled samples with each built-in bot, then show the results.
demo: setup
	rm -rf .spotbot-demo demo-output
	SPOTBOT_HOME=.spotbot-demo $(BIN)/spotbot tag samples --bot scene-text --out demo-output --job-id demo-scene-text
	SPOTBOT_HOME=.spotbot-demo $(BIN)/spotbot tag samples/reviews --bot sentiment --out demo-output --job-id demo-sentiment
	SPOTBOT_HOME=.spotbot-demo $(BIN)/spotbot tag samples/photos --bot car-model --out demo-output --job-id demo-car-model
	SPOTBOT_HOME=.spotbot-demo $(BIN)/spotbot search --job demo-scene-text --limit 20
	SPOTBOT_HOME=.spotbot-demo $(BIN)/spotbot search --job demo-sentiment --limit 20
	SPOTBOT_HOME=.spotbot-demo $(BIN)/spotbot search --job demo-car-model --limit 20
	@echo "JSON Lines: demo-output/<job_id>/part-*.jsonl   Try: SPOTBOT_HOME=.spotbot-demo $(BIN)/spotbot search 欢迎光临"

## Run the test suite (CI runs exactly this, through .ci/run).
test: setup
	$(BIN)/python -m pytest

## Benchmarks: figures, not pass/fail.
bench: setup
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/bots.py

clean:
	rm -rf $(VENV) .spotbot-demo demo-output .pytest_cache
