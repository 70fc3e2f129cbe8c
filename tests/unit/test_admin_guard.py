"""AdminGuard's verdicts: cached per client certificate, bounded, and never past the
certificate's NotAfter."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509

from actors.admin import AdminGuard
from actors.msp.msp import MSP, Identity
from tests.gateway_peer import make_crypto
from tests.unit.test_msp import issue, org_ca, org_dir, pem


@pytest.fixture(scope="module")
def crypto(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_crypto(tmp_path_factory.mktemp("crypto"))


class CountingMSP(MSP):
    """The org's MSP, counting chain validations."""

    validations = 0

    def validate(self, identity: Identity) -> list[x509.Certificate]:
        self.validations += 1
        return super().validate(identity)


@pytest.fixture
def msp(crypto: Path) -> CountingMSP:
    folder = org_dir(crypto, 1) / "msp"
    return CountingMSP.from_dir(folder, "Org1MSP")  # type: ignore[return-value]


def admin_cert(crypto: Path, not_after: dt.datetime | None = None, cn: str = "admin") -> bytes:
    ca_cert, ca_key = org_ca(crypto, 1)
    cert, _ = issue(ca_cert, ca_key, ous=("admin",), not_after=not_after, cn=cn)
    return pem(cert)


def test_a_verdict_is_reached_once_per_certificate(crypto: Path, msp: CountingMSP) -> None:
    guard = AdminGuard(msp)
    admin, client = admin_cert(crypto), pem(issue(*org_ca(crypto, 1), ous=("client",))[0])
    for _ in range(3):
        assert guard.refusal(admin) is None
        assert "is not an admin of Org1MSP" in (guard.refusal(client) or "")
    assert msp.validations == 2


def test_a_cached_verdict_ends_at_the_certificates_not_after(
    crypto: Path, msp: CountingMSP
) -> None:
    not_after = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=1)
    now = [dt.datetime.now(dt.UTC).timestamp()]
    guard = AdminGuard(msp, clock=lambda: now[0])
    cert = admin_cert(crypto, not_after)
    assert guard.refusal(cert) is None
    now[0] = not_after.timestamp() + 1
    assert "has expired" in (guard.refusal(cert) or "")


def test_the_cache_is_bounded(
    crypto: Path, msp: CountingMSP, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(AdminGuard, "CACHED_VERDICTS", 2)
    guard = AdminGuard(msp)
    certs = [admin_cert(crypto, cn=f"admin{n}") for n in range(3)]
    for cert in certs:
        assert guard.refusal(cert) is None
    assert msp.validations == 3
    assert guard.refusal(certs[2]) is None  # still cached
    assert msp.validations == 3
    assert guard.refusal(certs[0]) is None  # the oldest was let go
    assert msp.validations == 4
