"""Shared test support: how each backend under test is built, isolated and cleaned up."""
