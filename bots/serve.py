"""`python -m bots.serve`: the SageMaker serving entrypoint of bots/Dockerfile (GET /ping, POST /invocations).

A thin shim: the server lives in spotbot.entrypoints.serving.
"""

import sys

from spotbot.entrypoints.serving import main

if __name__ == "__main__":
    sys.exit(main())
