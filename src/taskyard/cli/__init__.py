"""The `taskyard` command line."""
