#!/usr/bin/env bash
# Installs onnxruntime-node 1.30.0 into bench/ort/node_modules (git-ignored)
# for bench/ort/run.js. Idempotent: does nothing when that version is already
# there. ONNXRUNTIME_NODE_INSTALL=skip keeps the package's install script from
# downloading GPU binaries (the npm package already ships the CPU library);
# --prefer-offline uses npm's cache when it can, so a second machine with a
# warm ~/.npm needs no network.
set -euo pipefail
DIR=$(cd "$(dirname "$0")" && pwd)
WANT=1.30.0

installed() {
  node -e "process.exit(require('$DIR/node_modules/onnxruntime-node/package.json')
                        .version === '$WANT' ? 0 : 1)" 2>/dev/null
}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "ort-setup: node and npm are needed (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi
if installed; then
  echo "ort-setup: onnxruntime-node $WANT present"
  exit 0
fi
echo "ort-setup: installing onnxruntime-node $WANT into $DIR/node_modules"
cd "$DIR"
ONNXRUNTIME_NODE_INSTALL=skip npm install --prefer-offline --no-audit --no-fund \
  --loglevel=error >/dev/null
installed || { echo "ort-setup: install failed" >&2; exit 1; }
node -e "require('onnxruntime-node')" \
  || { echo "ort-setup: onnxruntime-node does not load" >&2; exit 1; }
echo "ort-setup: done"
