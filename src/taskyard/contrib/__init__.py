"""Integrations with other frameworks, each an optional extra (`taskyard[django]`, ...).

Nothing in the core imports from here; each integration imports its framework itself.
"""
