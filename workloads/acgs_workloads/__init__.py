"""ACGS workloads: datasets, models, the training loop, evaluation and serving, run inside Ray.

Importing this package must stay cheap and torch-free (the operator imports `acgs_workloads.contract`).
"""
