#!/usr/bin/env bash
# npm-install.sh installs the npm packages of the interop tests — the
# LwM2M client examples/platform/interop_node_test.go runs, Telefonica's
# lwm2m-node-lib — into a folder the tests find:
#
#   internal/interop/npm-install.sh [dir]
#
# dir defaults to $DOZE_NPM_DIR, then .cache/npm (git-ignored); a relative
# dir is taken from the repository's root, as the tests take it. The versions are those of package-lock.json here, checked
# against its hashes (npm ci); no package's install scripts run. Node.js
# and npm come from Debian when missing (as root, like .ci/run). Running
# it again when the folder is up to date does nothing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
dir="$(realpath -m "${1:-${DOZE_NPM_DIR:-.cache/npm}}")"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "npm-install.sh: node and npm are missing; install Debian's nodejs and npm packages" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

mkdir -p "$dir"
if cmp -s "$here/package-lock.json" "$dir/package-lock.json" && [ -d "$dir/node_modules/lwm2m-node-lib" ]; then
  exit 0
fi
cp "$here/package.json" "$here/package-lock.json" "$dir/"
(cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
echo "npm-install.sh: installed $(node -p "require('$dir/node_modules/lwm2m-node-lib/package.json').version" 2>/dev/null || echo '?') of lwm2m-node-lib in $dir"
