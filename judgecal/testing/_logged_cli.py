"""``python -m judgecal.testing._logged_cli ARGS``: the judgecal CLI, logging everything.

judgecal's own loggers at DEBUG, every other logger at WARNING, all into the file named
by ``$JUDGECAL_TEST_LOG``, so a leak test can read what a verbose deployment would log.
(Third-party DEBUG/INFO logs are out of judgecal's hands: httpx logs every request URL at
INFO, so a secret webhook URL shows up there if an application turns httpx INFO on.)
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
    from judgecal.cli.main import main as cli_main

    cli_main(sys.argv[1:])


if __name__ == "__main__":
    main()
