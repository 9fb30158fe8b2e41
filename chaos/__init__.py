"""taskyard's outside-in chaos suite: real `taskyard` processes, seeded faults, Jepsen-style
histories and a checker. Run it with `python -m chaos` (or `make chaos`); see docs/reliability.md.
"""
