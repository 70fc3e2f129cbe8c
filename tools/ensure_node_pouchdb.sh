#!/usr/bin/env bash
# Install PouchDB (pouchdb-core, pouchdb-find, pouchdb-adapter-memory 9.0.0) for the Mango
# differential tests (tests/differential/pouchdb), when missing or older than package.json /
# package-lock.json. Safe to run repeatedly. Without node/npm it says so and exits 0 outside CI
# (the tests then skip with the same advice); with CI=true it fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$here/tests/differential/pouchdb"
stamp="$dir/node_modules/.ccactors-installed"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    msg="ensure_node_pouchdb: node and npm are needed for the Mango differential tests (install Node.js >= 18)"
    if [ "${CI:-}" = "true" ]; then
        echo "$msg" >&2
        exit 1
    fi
    echo "$msg; skipping" >&2
    exit 0
fi

if [ -f "$stamp" ] && [ ! "$dir/package.json" -nt "$stamp" ] && [ ! "$dir/package-lock.json" -nt "$stamp" ]; then
    exit 0
fi

cd "$dir"
echo "ensure_node_pouchdb: npm ci in $dir" >&2
npm ci --no-audit --no-fund --loglevel=error

node -e '
for (const name of ["pouchdb-core", "pouchdb-find", "pouchdb-adapter-memory"]) {
    const got = require(`${name}/package.json`).version;
    if (got !== "9.0.0") {
        console.error(`ensure_node_pouchdb: ${name} is ${got}, expected 9.0.0`);
        process.exit(1);
    }
}
'
touch "$stamp"
echo "ensure_node_pouchdb: node_modules ready" >&2
