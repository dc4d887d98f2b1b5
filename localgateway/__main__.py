"""`python -m localgateway`: see localgateway/cli.py and docs/local-gateway.md."""

import sys
import time

started = time.monotonic()  # before the imports: "ready in" counts them

from localgateway.cli import main  # noqa: E402

sys.exit(main(started=started))
