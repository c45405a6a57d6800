"""Helpers shared by tests and benchmarks that are not part of the shipped packages (e.g. the toy task)."""
