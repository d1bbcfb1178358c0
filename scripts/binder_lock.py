"""Helpers for scripts/binder-lock.sh: what goes into binder/requirements.txt, and its fingerprint.

binder/requirements.txt is a lock: every third-party package the Binder image needs, pinned with
hashes, resolved for the Python and platform repo2docker builds (CPython 3.12, linux x86-64). It is
made by ``scripts/binder-lock.sh``, never by hand. Two things make it fit repo2docker:

* It names no local file (no ``-e .``, no ``-r``), so repo2docker installs it *before* copying the
  repository: the pip layer stays cached until the lock itself changes. The project is installed
  afterwards by binder/postBuild with ``--no-deps``.
* Every package that repo2docker's own conda environment already holds (the Jupyter stack, setuptools,
  ...) is pinned to the version in repo2docker's conda lock, so pip finds it satisfied and adds only
  what nova_nb needs on top, and a plain venv made from the lock (the CI job) gets the same versions
  as the Binder image.

The lock's header carries a fingerprint of its inputs (the project's requirements, the repo2docker
version, the Python version); tests/test_binder.py recomputes it and fails when pyproject.toml's
requirements changed without the lock being made again.

Usage (from binder-lock.sh): ``python scripts/binder_lock.py inputs PYPROJECT OUT_IN``,
``python scripts/binder_lock.py constraints CONDA_LOCK OUT_TXT``,
``python scripts/binder_lock.py header PYPROJECT CONDA_LOCK``.
"""

from __future__ import annotations

import hashlib
import re
import sys
import tomllib
from pathlib import Path
from typing import Final

#: The repo2docker release whose build this lock targets (BinderHub's mybinder.org deployment).
REPO2DOCKER_VERSION: Final = "2026.4.0"
#: binder/runtime.txt's Python; repo2docker's conda lock for it supplies the Jupyter stack.
PYTHON_VERSION: Final = "3.12"
#: The platform of Binder's nodes.
PLATFORM: Final = "x86_64-manylinux_2_39"
#: The notebook extra: what a Binder user's JupyterLab needs besides the package itself.
EXTRAS: Final = ("notebook",)
FINGERPRINT_PREFIX: Final = "# inputs-sha256: "
#: The header line naming the pip of repo2docker's environment (scripts/ci_binder.py installs it).
PIP_PREFIX: Final = "# repo2docker-pip: "

_PROJECT_NAME = "nova-nb"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_inputs(pyproject: Path) -> list[str]:
    """The requirements the lock resolves: the project's dependencies, its notebook extra, and its build
    requirements (postBuild installs the project with --no-build-isolation, so setuptools comes from
    the lock too). A self-reference such as ``nova_nb[notebook]`` is skipped."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    project = data["project"]
    requirements: list[str] = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in EXTRAS:
        if extra not in optional:
            raise SystemExit(
                f"{pyproject}: no optional-dependencies extra {extra!r} (have: {sorted(optional)})"
            )
        requirements += optional[extra]
    requirements += data.get("build-system", {}).get("requires", [])
    kept = []
    for requirement in requirements:
        name = re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0]
        if _normalize(name) != _PROJECT_NAME:
            kept.append(requirement.strip())
    return sorted(set(kept))


def fingerprint(pyproject: Path) -> str:
    """sha256 over the lock's inputs: changes exactly when the lock must be made again."""
    text = "\n".join(
        [f"repo2docker {REPO2DOCKER_VERSION}", f"python {PYTHON_VERSION}", *lock_inputs(pyproject)]
    )
    return hashlib.sha256(text.encode()).hexdigest()


def conda_constraints(conda_lock: Path) -> list[str]:
    """``name==version`` for each package of repo2docker's conda explicit lock whose version pip can
    read. Conda-only packages (libgcc, openssl, tzdata, ...) end up here too; a constraint on a package
    nothing requires is ignored by the resolver."""
    from packaging.version import InvalidVersion, Version

    constraints = []
    for line in conda_lock.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line.startswith("http"):
            continue
        filename = line.split("#", 1)[0].rsplit("/", 1)[-1]
        stem = filename.removesuffix(".conda").removesuffix(".tar.bz2")
        name, version, _build = stem.rsplit("-", 2)
        # python and pip are not packages pip resolves; "_libgcc_mutex" and friends are not valid
        # Python package names at all.
        if name in ("python", "pip") or not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", name):
            continue
        try:
            Version(version)
        except InvalidVersion:
            continue
        constraints.append(f"{name}=={version}")
    if not any(c.startswith("jupyterlab==") for c in constraints):
        raise SystemExit(f"{conda_lock}: no jupyterlab in it; is this repo2docker's conda environment lock?")
    return sorted(constraints)


def conda_pip_version(conda_lock: Path) -> str:
    """The pip version in repo2docker's conda environment: the pip that installs the lock on Binder.
    The CI job installs the same one before the lock (older pips reject a hashed lock whose packages
    are required with extras, e.g. ``jsonschema[format-nongpl]``)."""
    for line in conda_lock.read_text(encoding="utf-8").splitlines():
        stem = line.split("#", 1)[0].rsplit("/", 1)[-1].removesuffix(".conda").removesuffix(".tar.bz2")
        if line.startswith("http") and stem.rsplit("-", 2)[0] == "pip":
            return stem.rsplit("-", 2)[1]
    raise SystemExit(f"{conda_lock}: no pip in it")


def main(argv: list[str]) -> int:
    usage = (
        "usage: binder_lock.py inputs PYPROJECT OUT | constraints CONDA_LOCK OUT"
        " | header PYPROJECT CONDA_LOCK"
    )
    if len(argv) < 2:
        print(usage, file=sys.stderr)
        return 2
    command, source = argv[0], Path(argv[1])
    if command == "inputs" and len(argv) == 3:
        Path(argv[2]).write_text("\n".join(lock_inputs(source)) + "\n", encoding="utf-8")
    elif command == "constraints" and len(argv) == 3:
        Path(argv[2]).write_text("\n".join(conda_constraints(source)) + "\n", encoding="utf-8")
    elif command == "header" and len(argv) == 3:
        print(f"{FINGERPRINT_PREFIX}{fingerprint(source)}")
        print(f"{PIP_PREFIX}{conda_pip_version(Path(argv[2]))}")
    else:
        print(usage, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
