#!/usr/bin/env bash
# Create .venv-fabric-cc holding PyPI fabric-chaincode-python (the real Python chaincode shim,
# chaincode-as-a-service only) for tests/interop/test_python_ccaas.py.
#
# It pins protobuf<6 through hyperledger-fabric-protos, so it cannot share .venv (protobuf 7).
# Idempotent: does nothing when the venv already holds the pinned version; rebuilds it when the
# pin changes or a previous run was interrupted (the stamp is written last).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${FABRIC_CC_VENV:-.venv-fabric-cc}"
PACKAGE="fabric-chaincode-python==2.5.4"
STAMP="$VENV/.installed"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$PACKAGE" ] && [ -x "$VENV/bin/python" ]; then
    exit 0
fi

echo "creating $VENV with $PACKAGE" >&2
"$PYTHON" -m venv --clear "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$PACKAGE"
"$VENV/bin/python" -c "import fabric_chaincode_python.fabric_shim.server"
printf '%s' "$PACKAGE" >"$STAMP"
