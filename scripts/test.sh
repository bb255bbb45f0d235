#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: installs the package with its test extra and, when missing,
# the system WordNet 3.0 (Debian's wordnet-base + wordnet-sense-index) the WordNet tests read offline.
# Usage: bash scripts/test.sh [pytest args...]
# Runs every test; the fast tier (no end-to-end runs, no slow tests) is: bash scripts/test.sh -m "not e2e and not slow"
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f /usr/share/wordnet/index.sense ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wordnet-base wordnet-sense-index
fi
python3 -m pip install -q -e '.[test]'
set +e
python3 -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "scripts/test.sh: pytest collected no tests: treating that as a failure" >&2
  exit 1
fi
exit "$status"
