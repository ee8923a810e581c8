"""`python -m bench [--quick] [--strict] [--app-python PATH]`: see bench/__init__.py."""

from __future__ import annotations

import os
import sys

# Settings are read once per process and table names at import: fix the environment first.
# The app processes inherit it, plus their own endpoint, namespace, port and log level.
os.environ.update(
    {
        "APP_ENV": "bench",
        "APP_NAMESPACE": "",
        "LOG_LEVEL": "WARNING",
        "SEED_ON_START": "false",
        "RUN_WORKER": "false",
        "CURSOR_SECRET": "bench-cursor-secret",
        "REQUIRE_IF_MATCH": "false",
    }
)
os.environ.pop("JOBS_QUEUE_URL", None)

if __name__ == "__main__":
    from bench.run import main

    sys.exit(main())
