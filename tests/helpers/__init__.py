"""Helpers shared by tests (and benchmarks) that are no part of the installed packages."""
