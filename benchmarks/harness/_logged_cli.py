"""``python -m benchmarks.harness._logged_cli ARGS``: the judgecal CLI, logging everything.

judgecal's own loggers at DEBUG, every other logger at WARNING, all into the file named
by ``$JUDGECAL_TEST_LOG``, so a leak test can read what a verbose deployment would log.
``$JUDGECAL_TEST_LOG_LEVELS`` sets more loggers, e.g. ``httpx=DEBUG,openai=DEBUG`` (httpx
logs every request URL at INFO, openai the response headers at DEBUG: what an application
that turns them on would write); with ``$JUDGECAL_TEST_LOG_STDERR=1`` every record also goes
to stderr.
"""

from __future__ import annotations

import logging
import os
import sys


def main() -> None:
    logging.basicConfig(
        level=logging.WARNING,
        filename=os.environ["JUDGECAL_TEST_LOG"],
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("judgecal").setLevel(logging.DEBUG)
    for item in os.environ.get("JUDGECAL_TEST_LOG_LEVELS", "").split(","):
        name, _, level = item.partition("=")
        if name.strip() and level.strip():
            logging.getLogger(name.strip()).setLevel(level.strip().upper())
    if os.environ.get("JUDGECAL_TEST_LOG_STDERR"):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        logging.getLogger().addHandler(handler)
    from judgecal.cli.main import main as cli_main

    cli_main(sys.argv[1:])


if __name__ == "__main__":
    main()
