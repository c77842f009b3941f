"""Maps the top-level ``meshes/`` folder into the wheel as ``organsim.meshes``.

Everything else about the package is declared in pyproject.toml; this file only
exists because setuptools' pyproject configuration cannot combine automatic
package discovery with a package that lives outside ``organsim/``.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["organsim", "organsim.*"]) + ["organsim.meshes"],
    package_dir={"organsim.meshes": "meshes"},
    package_data={"organsim.meshes": ["*.vtu", "README.md"]},
)
