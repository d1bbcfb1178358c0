#!/usr/bin/env bash
# CI job "Binder, proven": recreate the Binder environment from binder/ as an unprivileged user, start
# the server, check the TCP_NODELAY extension is enabled and loaded, and execute notebooks 00 and 01
# under a 1.5 GiB memory ceiling. The steps are in scripts/ci_binder.py; docs/BINDER.md explains them.
#
#   scripts/ci-binder.sh [--cold]     --cold: empty the pip download cache first
#
# Bounded: the whole job is stopped after NOVA_NB_BINDER_CI_TIMEOUT seconds (default 600). It needs
# only the system's python3 (standard library) and a CPython 3.12 (found as ./dev finds one).
set -euo pipefail
cd "$(dirname "$0")/.."
exec timeout --kill-after=15 "${NOVA_NB_BINDER_CI_TIMEOUT:-600}" python3 scripts/ci_binder.py "$@"
