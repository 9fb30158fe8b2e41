"""The chaos suite's short version: the checker's unit tests and a few real scenarios."""
