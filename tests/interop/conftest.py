"""Shared rules for the interop tests (real Fabric chaincode shims against our peer).

Their prerequisites (node and npm packages, a separate virtualenv) are installed by the
``tools/ensure_*_interop.sh`` scripts that ``make test`` runs. When one is missing, a test
skips with the command to run, except in CI (``CI=true``), where the interop tests must run and
a missing prerequisite is a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

import pytest

from tests import helpers


@pytest.fixture(scope="session")
def skip_or_fail() -> Callable[[str], NoReturn]:
    """``skip_or_fail(reason)``: skip the test, or fail it when running in CI."""
    return helpers.skip_or_fail
