#!/usr/bin/env bash
# Installs the Debian packages DDL's build, demo and tests need, when they
# are missing. Needs root for apt-get; otherwise it only says what is missing.
#
#   scripts/ensure-deps.sh           # everything the test suite needs
#   scripts/ensure-deps.sh --build   # only what building and the demo need
set -euo pipefail

build=(gcc g++ make pkg-config libffi-dev)
# The real client of the test suite: numpy on reference BLAS (old) mirrored
# into OpenBLAS (new).
tests=(python3 python3-numpy libblas3 libopenblas0-pthread)

want=("${build[@]}")
if [ "${1:-}" != "--build" ]; then
  want+=("${tests[@]}")
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-deps: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
  exit 0
fi
echo "ensure-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
