"""Evaluation sets written apart from the generator: red-team (never approve) and benign (approve) requests."""
