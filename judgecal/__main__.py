"""``python -m judgecal``: the command-line interface."""

from judgecal.cli.main import main

main()
