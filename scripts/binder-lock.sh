#!/usr/bin/env bash
# Make binder/requirements.txt: the pinned, hashed lock of every third-party package the Binder image
# needs, for CPython 3.12 on linux x86-64 (what repo2docker builds from binder/runtime.txt).
#
#   scripts/binder-lock.sh            re-resolve from pyproject.toml and rewrite the lock
#
# Run it whenever pyproject.toml's dependencies or notebook extra change (tests/test_binder.py fails
# until you do). What it does and why: scripts/binder_lock.py and docs/BINDER.md.
#
# Tools are pinned and installed into a cache directory (not the project's .venv): uv resolves for the
# target Python and platform from any host, and repo2docker's package supplies the conda lock of the
# environment it builds, whose versions the lock reuses. Packages newer than EXCLUDE_NEWER are not
# considered, so running this twice gives the same lock; move the date forward to take updates.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

UV_VERSION=0.13.9
REPO2DOCKER_VERSION=2026.4.0   # keep equal to scripts/binder_lock.py REPO2DOCKER_VERSION
PYTHON_VERSION=3.12            # keep equal to binder/runtime.txt
PLATFORM=x86_64-manylinux_2_39   # buildpack-deps:24.04, the base of repo2docker's image: glibc 2.39
EXCLUDE_NEWER=${BINDER_LOCK_EXCLUDE_NEWER:-2026-12-01T00:00:00Z}
OUT=$ROOT/binder/requirements.txt

say() { printf '[binder-lock] %s\n' "$*" >&2; }

if [ "$(cat binder/runtime.txt)" != "python-$PYTHON_VERSION" ]; then
  say "binder/runtime.txt says '$(cat binder/runtime.txt)', this script locks for python-$PYTHON_VERSION"
  exit 1
fi

host_python=${NOVA_NB_PYTHON:-}
if [ -z "$host_python" ]; then
  for candidate in "$ROOT/.venv/bin/python" python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      host_python=$(command -v "$candidate"); break
    fi
  done
fi
[ -n "$host_python" ] || { say "need a Python >= 3.11 (tomllib) to run the tools; set NOVA_NB_PYTHON"; exit 1; }

tools=${XDG_CACHE_HOME:-$HOME/.cache}/nova_nb/binder-lock-uv$UV_VERSION-r2d$REPO2DOCKER_VERSION
if [ ! -x "$tools/bin/uv" ] || [ ! -d "$tools/lib" ]; then
  say "installing uv $UV_VERSION and jupyter-repo2docker $REPO2DOCKER_VERSION into $tools"
  rm -rf "$tools"
  "$host_python" -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet --disable-pip-version-check \
    "uv==$UV_VERSION" "jupyter-repo2docker==$REPO2DOCKER_VERSION" "packaging>=24"
fi

conda_lock=$("$tools/bin/python" -c "
import pathlib, repo2docker
print(pathlib.Path(repo2docker.__file__).parent / 'buildpacks/conda/environment.py-$PYTHON_VERSION-linux-64.lock')")
[ -f "$conda_lock" ] || { say "repo2docker $REPO2DOCKER_VERSION has no conda lock for Python $PYTHON_VERSION"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$tools/bin/python" scripts/binder_lock.py inputs pyproject.toml "$work/lock.in"
"$tools/bin/python" scripts/binder_lock.py constraints "$conda_lock" "$work/conda-constraints.txt"

say "resolving $(wc -l <"$work/lock.in") requirements for CPython $PYTHON_VERSION on $PLATFORM (newest allowed: $EXCLUDE_NEWER)"
# --only-binary: every package must come as a wheel (Binder has no compilers or -dev packages to build
# one). SSL_CERT_FILE: use the system's CA bundle as pip does here (a TLS-intercepting proxy, if any).
SSL_CERT_FILE=${SSL_CERT_FILE:-${PIP_CERT:-}} "$tools/bin/uv" pip compile "$work/lock.in" \
  --constraint "$work/conda-constraints.txt" \
  --python-version "$PYTHON_VERSION" --python-platform "$PLATFORM" \
  --only-binary :all: --generate-hashes --exclude-newer "$EXCLUDE_NEWER" \
  --no-header --quiet --output-file "$work/resolved.txt"

{
  echo "# Binder's pinned environment: made by scripts/binder-lock.sh from pyproject.toml. Do not edit by hand."
  echo "# For CPython $PYTHON_VERSION on $PLATFORM; packages in repo2docker $REPO2DOCKER_VERSION's conda environment"
  echo "# keep its versions; newest allowed: $EXCLUDE_NEWER (uv $UV_VERSION). nova_nb itself is installed"
  echo "# afterwards by binder/postBuild with --no-deps, so this file names nothing local and stays cached."
  "$tools/bin/python" scripts/binder_lock.py header pyproject.toml "$conda_lock"
  echo "--only-binary :all:"
  # The input file's path in uv's "# via -r ..." notes is a temporary one; name what it stands for.
  sed -e "s#-r $work/lock.in#pyproject.toml#g" -e "s#-c $work/conda-constraints.txt#repo2docker conda env#g" \
    "$work/resolved.txt"
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
say "wrote $OUT: $(grep -c '==' "$OUT") packages pinned"
