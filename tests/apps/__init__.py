"""Importable app modules that subprocess tests run with `--app`."""
