"""Package discovery for the renamed directories (everything else is in pyproject.toml).

`operator/` installs as `acgs_operator` and `workloads/` as `acgs_workloads`; find_packages cannot see
through that mapping, so the package lists are derived here from the directory trees.
"""

from setuptools import find_packages, setup


def mapped(import_name: str, directory: str) -> list[str]:
    return [import_name] + [f"{import_name}.{sub}" for sub in find_packages(directory)]


setup(packages=mapped("acgs_operator", "operator") + mapped("acgs_workloads", "workloads"))
