"""The Spot worker's entry point for the image: `python -m batch_jobs.worker` runs
spotbot.entrypoints.batch_worker (its docstring lists the environment and the exit codes)."""

import sys

from spotbot.entrypoints.batch_worker import main

if __name__ == "__main__":
    sys.exit(main())
