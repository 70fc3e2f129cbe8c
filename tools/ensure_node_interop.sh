#!/usr/bin/env bash
# Install the npm packages the Node interop tests need (tests/interop/node: Fabric's Node
# chaincode shims; tests/interop/gateway_client: the official Gateway client;
# tests/interop/caliper: Hyperledger Caliper), when they are
# missing or older than package.json / package-lock.json. Safe to run repeatedly: it does
# nothing when node_modules is up to date.
#
#   tools/ensure_node_interop.sh           install if needed
#   FORCE=1 tools/ensure_node_interop.sh   reinstall from scratch
#
# Without node/npm it says so and exits 0 outside CI (the tests then skip with the same
# advice); with CI=true it fails, because CI must run the interop tests.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    msg="ensure_node_interop: node and npm are needed for the Node interop tests (install Node.js >= 18)"
    if [ "${CI:-}" = "true" ]; then
        echo "$msg" >&2
        exit 1
    fi
    echo "$msg; skipping" >&2
    exit 0
fi

ensure_dir() {
    local dir="$1" check="$2"
    local stamp="$dir/node_modules/.ccactors-installed"
    if [ "${FORCE:-}" = "1" ]; then
        rm -rf "$dir/node_modules"
    fi

    local stale=0
    if [ ! -f "$stamp" ]; then
        stale=1
    else
        for f in "$dir/package.json" "$dir/package-lock.json"; do
            if [ -f "$f" ] && [ "$f" -nt "$stamp" ]; then
                stale=1
            fi
        done
    fi
    if [ "$stale" = "0" ]; then
        return 0
    fi

    (
    cd "$dir"
    # npm's own progress and funding chatter is noise in a test log.
    flags=(--no-audit --no-fund --loglevel=error)
    if [ -f package-lock.json ]; then
        echo "ensure_node_interop: npm ci in $dir" >&2
        npm ci "${flags[@]}"
    else
        echo "ensure_node_interop: npm install in $dir" >&2
        npm install "${flags[@]}"
    fi
    )

    # The pins the tests rely on: fail here, with the reason, rather than in a transaction.
    (cd "$dir" && node -e "$check")
    touch "$stamp"
    echo "ensure_node_interop: $dir/node_modules ready" >&2
}

# shellcheck disable=SC2016 # JavaScript, not shell
ensure_dir "$here/tests/interop/node" '
const want = {"fabric-shim": "2.5.8", "fabric-contract-api": "2.5.8", "class-transformer": "0.4.0"};
for (const [name, version] of Object.entries(want)) {
    const got = require(`${name}/package.json`).version;
    if (got !== version) {
        console.error(`ensure_node_interop: ${name} is ${got}, expected ${version}`);
        process.exit(1);
    }
}
if (typeof require("class-transformer").classToPlain !== "function") {
    console.error("ensure_node_interop: class-transformer lacks classToPlain (needs 0.4.0)");
    process.exit(1);
}
'
# shellcheck disable=SC2016
ensure_dir "$here/tests/interop/gateway_client" '
const got = require("@hyperledger/fabric-gateway/package.json").version;
if (got !== "1.12.1") {
    console.error(`ensure_node_interop: @hyperledger/fabric-gateway is ${got}, expected 1.12.1`);
    process.exit(1);
}
'
# shellcheck disable=SC2016
ensure_dir "$here/tests/interop/caliper" '
const got = require("@hyperledger/caliper-cli/package.json").version;
if (got !== "0.6.0") {
    console.error(`ensure_node_interop: @hyperledger/caliper-cli is ${got}, expected 0.6.0`);
    process.exit(1);
}
'
