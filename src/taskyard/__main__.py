"""`python -m taskyard` is the `taskyard` command."""

from taskyard.cli.main import main

main()
