"""`python -m localgateway`: see localgateway/cli.py and docs/local-gateway.md."""

import signal
import sys
import time

started = time.monotonic()  # before the imports: "ready in" counts them
# Ctrl-C stops from the first instant, the imports (a second or more) included, even
# when started with SIGINT ignored (a shell's background job).
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGTERM, signal.default_int_handler)
try:
    from localgateway.cli import main
except KeyboardInterrupt:
    sys.exit(130)

main(started=started)
