"""MSP identities, signatures and signature policies (actors.msp), against Fabric's rules."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import NameOID

from actors.msp import cryptogen
from actors.msp.msp import (
    MSP,
    Identity,
    MSPError,
    MSPManager,
    SigningIdentity,
    load_signing_identity,
)
from actors.msp.policies import PolicyError, SignedData, evaluate, from_string, to_string
from actors.msp.signatures import SignatureError, sign, verify
from protos.common.policies_pb2 import SignaturePolicy, SignaturePolicyEnvelope
from protos.msp.msp_principal_pb2 import MSPPrincipal, MSPRole
from tests.gateway_peer import ident
from tests.helpers import skip_or_fail

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@pytest.fixture(scope="module")
def orgs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("crypto")
    assert cryptogen.main(["--orgs", "Org1MSP,Org2MSP", "--out", str(out), "--users", "2"]) == 0
    return out


def org_dir(orgs: Path, n: int) -> Path:
    return orgs / "peerOrganizations" / f"org{n}.example.com"


member = ident  # (crypto, org number, "peer0" | "User1@" | "Admin@")


def manager(orgs: Path) -> MSPManager:
    return MSPManager(MSP.from_dir(org_dir(orgs, n) / "msp", f"Org{n}MSP") for n in (1, 2))


def org_ca(orgs: Path, n: int) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca = org_dir(orgs, n) / "ca"
    cert = x509.load_pem_x509_certificate(next(ca.glob("*-cert.pem")).read_bytes())
    key = serialization.load_pem_private_key((ca / "priv_sk").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def issue(
    issuer: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ous: tuple[str, ...] = ("client",),
    ca: bool = False,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    cn: str = "someone",
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    attrs = [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou) for ou in ous]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Fabric checks the chain at the leaf's NotBefore + 1 s, when the CA (made minutes ago
        # by the fixture) must already be valid
        .not_valid_before(not_before or now - dt.timedelta(seconds=30))
        .not_valid_after(not_after or now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )
    return cert, key


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


# --- signatures ----------------------------------------------------------------------------


def test_signatures_are_low_s_and_high_s_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    for i in range(20):
        message = f"message {i}".encode()
        signature = sign(key, message)
        r, s = decode_dss_signature(signature)
        assert s <= P256_N >> 1
        verify(key.public_key(), message, signature)
        high = encode_dss_signature(r, P256_N - s)  # valid for plain ECDSA, not for Fabric
        with pytest.raises(SignatureError, match="Invalid S"):
            verify(key.public_key(), message, high)
    with pytest.raises(SignatureError, match="The signature is invalid"):
        verify(key.public_key(), b"other", sign(key, b"message"))
    with pytest.raises(SignatureError, match="failed unmashalling"):
        verify(key.public_key(), b"m", b"\x30\x01garbage")


def test_ed25519_signatures_verify() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    verify(key.public_key(), b"m", sign(key, b"m"))
    with pytest.raises(SignatureError):
        verify(key.public_key(), b"n", sign(key, b"m"))


# --- MSP folders and validation ------------------------------------------------------------


def test_cryptogen_layout_loads_and_roles_come_from_node_ous(orgs: Path) -> None:
    msp = MSP.from_dir(org_dir(orgs, 1) / "msp", "Org1MSP")
    expected = {"peer0": {"peer"}, "Admin@": {"admin"}, "User1@": {"client"}, "User2@": {"client"}}
    for name, roles in expected.items():
        ident = member(orgs, 1, name)
        assert len(msp.validate(ident)) == 2  # leaf + root CA
        assert msp.roles(ident) == roles
        assert msp.is_admin(ident) == (roles == {"admin"})
    peer_tls = org_dir(orgs, 1) / "peers" / "peer0.org1.example.com" / "tls"
    assert {p.name for p in peer_tls.iterdir()} == {"ca.crt", "server.crt", "server.key"}


def test_an_identity_of_another_org_or_claiming_another_msp_is_refused(orgs: Path) -> None:
    org1 = MSP.from_dir(org_dir(orgs, 1) / "msp", "Org1MSP")
    stranger = member(orgs, 2, "User1@")
    with pytest.raises(MSPError, match="does not belong to this msp"):
        org1.validate(stranger)
    claimed = Identity("Org1MSP", stranger.cert, stranger.pem)  # Org2's cert, Org1's name
    with pytest.raises(MSPError, match="signed by unknown authority"):
        org1.validate(claimed)


def test_a_ca_certificate_cannot_be_an_identity(orgs: Path) -> None:
    msp = MSP.from_dir(org_dir(orgs, 1) / "msp", "Org1MSP")
    ca_cert, _ = org_ca(orgs, 1)
    with pytest.raises(MSPError, match="Certificate Authority equals true"):
        msp.validate(Identity("Org1MSP", ca_cert, pem(ca_cert)))


def test_expiry_is_not_checked_by_the_msp_but_is_reported(orgs: Path) -> None:
    """Fabric's MSP verifies the chain at NotBefore + 1 s; the endorser checks expiry apart."""
    msp = MSP.from_dir(org_dir(orgs, 1) / "msp", "Org1MSP")
    ca_cert, ca_key = org_ca(orgs, 1)
    now = dt.datetime.now(dt.UTC)
    cert, _ = issue(
        ca_cert,
        ca_key,
        not_before=now - dt.timedelta(seconds=60),
        not_after=now - dt.timedelta(seconds=30),
    )
    old = Identity("Org1MSP", cert, pem(cert))
    msp.validate(old)
    assert old.expired()
    assert not member(orgs, 1, "User1@").expired()


def test_node_ou_rules(orgs: Path) -> None:
    msp = MSP.from_dir(org_dir(orgs, 1) / "msp", "Org1MSP")
    ca_cert, ca_key = org_ca(orgs, 1)
    for ous, error in (
        (("client", "peer"), "not a combination of them"),
        ((), "does not have an OU that resolves"),
        (("engineering",), "does not have an OU that resolves"),
    ):
        cert, _ = issue(ca_cert, ca_key, ous=ous)
        with pytest.raises(MSPError, match=error):
            msp.validate(Identity("Org1MSP", cert, pem(cert)))
    cert, _ = issue(ca_cert, ca_key, ous=("client", "engineering"))
    assert msp.roles(Identity("Org1MSP", cert, pem(cert))) == {"client"}


def _ca_folder(tmp: Path, root: x509.Certificate, intermediates: list[x509.Certificate]) -> Path:
    (tmp / "cacerts").mkdir(parents=True)
    (tmp / "cacerts" / "root.pem").write_bytes(pem(root))
    if intermediates:
        (tmp / "intermediatecerts").mkdir()
        for i, c in enumerate(intermediates):
            (tmp / "intermediatecerts" / f"int{i}.pem").write_bytes(pem(c))
    # NodeOUs without a Certificate: any issuer of the MSP may certify the roles
    no_certs = "\n".join(
        line for line in cryptogen._NODE_OUS.splitlines() if "Certificate:" not in line
    )
    (tmp / "config.yaml").write_text(no_certs + "\n")
    return tmp


def test_intermediate_chains_and_the_leaf_of_the_tree_rule(orgs: Path, tmp_path: Path) -> None:
    root, root_key = org_ca(orgs, 2)
    inter, inter_key = issue(root, root_key, ous=(), ca=True, cn="intermediate")
    msp = MSP.from_dir(_ca_folder(tmp_path / "msp", root, [inter]), "Org2MSP")
    leaf, _ = issue(inter, inter_key, ous=("peer",))
    assert len(msp.validate(Identity("Org2MSP", leaf, pem(leaf)))) == 3
    direct, _ = issue(root, root_key, ous=("peer",))
    with pytest.raises(MSPError, match="should be a leaf of the certification tree"):
        msp.validate(Identity("Org2MSP", direct, pem(direct)))
    # As in Fabric, a NodeOU certified by the root does not cover the intermediate's leaves
    (tmp_path / "msp" / "config.yaml").write_text(cryptogen._NODE_OUS.format(ca="root.pem"))
    strict = MSP.from_dir(tmp_path / "msp", "Org2MSP")
    with pytest.raises(MSPError, match="certifiersIdentifier does not match"):
        strict.validate(Identity("Org2MSP", leaf, pem(leaf)))


def test_a_revoked_certificate_is_refused(orgs: Path, tmp_path: Path) -> None:
    ca_cert, ca_key = org_ca(orgs, 1)
    folder = tmp_path / "msp"
    shutil.copytree(org_dir(orgs, 1) / "msp", folder)
    revoked, _ = issue(ca_cert, ca_key)
    fine, _ = issue(ca_cert, ca_key)
    now = dt.datetime.now(dt.UTC)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=1))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(revoked.serial_number)
            .revocation_date(now)
            .build()
        )
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "crls").mkdir()
    (folder / "crls" / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    msp = MSP.from_dir(folder, "Org1MSP")
    msp.validate(Identity("Org1MSP", fine, pem(fine)))
    with pytest.raises(MSPError, match="has been revoked"):
        msp.validate(Identity("Org1MSP", revoked, pem(revoked)))


def test_msp_folder_errors_are_clear(tmp_path: Path, orgs: Path) -> None:
    with pytest.raises(MSPError, match="is not a directory"):
        MSP.from_dir(tmp_path / "missing", "X")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MSPError, match="at least one CA certificate"):
        MSP.from_dir(tmp_path / "empty", "X")
    broken = tmp_path / "broken"
    shutil.copytree(org_dir(orgs, 1) / "msp", broken)
    (broken / "config.yaml").write_text("NodeOUs: [unclosed")
    with pytest.raises(MSPError, match="cannot parse"):
        MSP.from_dir(broken, "Org1MSP")
    (broken / "config.yaml").write_text(
        "NodeOUs:\n  Enable: true\n  ClientOUIdentifier:\n    Certificate: ../../etc/passwd\n"
        "    OrganizationalUnitIdentifier: client\n"
    )
    with pytest.raises(MSPError, match="not a file in the MSP folder"):
        MSP.from_dir(broken, "Org1MSP")
    (broken / "config.yaml").unlink()
    with pytest.raises(MSPError, match="administrators must be declared"):
        MSP.from_dir(broken, "Org1MSP")


def test_identities_made_by_openssl_work_the_same(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:  # Debian's base system has it; CI must run this
        skip_or_fail("openssl is not installed")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "ca.ext").write_text(
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\n"
    )
    (tmp_path / "leaf.ext").write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=digitalSignature\n"
    )
    run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    run(
        "req", "-new", "-x509", "-key", "ca.key", "-subj", "/O=OsslOrg/CN=ca.ossl", "-days", "30",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
        "-out", "ca.pem",
    )  # fmt: skip
    run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "user.key")
    run("req", "-new", "-key", "user.key", "-subj", "/OU=client/CN=user.ossl", "-out", "user.csr")
    run(
        "x509", "-req", "-in", "user.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "10", "-extfile", "leaf.ext", "-out", "user.pem",
    )  # fmt: skip
    msp_dir = tmp_path / "msp"
    for sub in ("cacerts", "signcerts", "keystore"):
        (msp_dir / sub).mkdir(parents=True)
    shutil.copy(tmp_path / "ca.pem", msp_dir / "cacerts" / "ca.pem")
    shutil.copy(tmp_path / "user.pem", msp_dir / "signcerts" / "cert.pem")
    # openssl writes SEC1 "EC PRIVATE KEY" files; Fabric CA writes PKCS#8: both must load
    shutil.copy(tmp_path / "user.key", msp_dir / "keystore" / "0123_sk")
    (msp_dir / "config.yaml").write_text(cryptogen._NODE_OUS.format(ca="ca.pem"))
    msp = MSP.from_dir(msp_dir, "OsslMSP")
    user = load_signing_identity(msp_dir, "OsslMSP")
    msp.validate(user)
    assert msp.roles(user) == {"client"}
    user.verify(b"tx", user.sign(b"tx"))
    policy = from_string("OR('OsslMSP.client')")
    data = SignedData(b"tx", user.serialized, user.sign(b"tx"))
    evaluate(policy, [data], MSPManager([msp]))


def test_manager_deserialises_creators(orgs: Path) -> None:
    mgr = manager(orgs)
    user = member(orgs, 2, "User1@")
    ident, msp = mgr.deserialize(user.serialized)
    assert (ident.msp_id, msp.msp_id, ident.id) == ("Org2MSP", "Org2MSP", user.id)
    with pytest.raises(MSPError, match="could not deserialize"):
        mgr.deserialize(b"\xff\xff")
    stranger = Identity("Org9MSP", user.cert, user.pem)
    with pytest.raises(MSPError, match="MSP Org9MSP is not defined on channel"):
        mgr.deserialize(stranger.serialized)


# --- the policy language --------------------------------------------------------------------


def _role(msp_id: str, role: int) -> MSPPrincipal:
    return MSPPrincipal(
        principal_classification=MSPPrincipal.ROLE,
        principal=MSPRole(msp_identifier=msp_id, role=role).SerializeToString(),
    )


def _out_of(n: int, *rules: SignaturePolicy) -> SignaturePolicy:
    out = SignaturePolicy()
    out.n_out_of.n = n
    out.n_out_of.rules.extend(rules)
    return out


def _signed_by(i: int) -> SignaturePolicy:
    return SignaturePolicy(signed_by=i)


def test_policy_envelopes_match_fabrics_construction() -> None:
    """Principals are numbered nested-first and never de-duplicated, as policydsl does."""
    env = from_string("OR('A.member', AND('B.member', 'C.member'))")
    expected = SignaturePolicyEnvelope(
        version=0,
        rule=_out_of(1, _signed_by(2), _out_of(2, _signed_by(0), _signed_by(1))),
        identities=[
            _role("B", MSPRole.MEMBER),
            _role("C", MSPRole.MEMBER),
            _role("A", MSPRole.MEMBER),
        ],
    )
    assert env.SerializeToString(deterministic=True) == expected.SerializeToString(
        deterministic=True
    )
    env = from_string("OutOf(1, 'Org1MSP.peer', \"Org1MSP.peer\", 'Org2-x.y.admin')")
    assert [MSPRole.FromString(p.principal).role for p in env.identities] == [3, 3, 1]
    assert env.rule == _out_of(1, _signed_by(0), _signed_by(1), _signed_by(2))
    assert to_string(from_string("and('A.peer', or('B.client', 'C.orderer'))")) == (
        "AND('A.peer', OR('B.client', 'C.orderer'))"
    )
    assert from_string("OutOf(3, 'A.peer', 'B.peer')").rule.n_out_of.n == 3  # n+1 is accepted


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("OR(A.member)", "unrecognized token"),
        ("OR('A.boss')", "unrecognized token 'A.boss'"),
        ("OutOf(4, 'A.peer', 'B.peer')", "invalid t-out-of-n predicate, t 4, n 2"),
        ("OutOf(-1, 'A.peer')", "invalid t-out-of-n predicate"),
        ("OutOf(1)", "expected at least two arguments to NOutOf. Given 1"),
        ("AND()", "expected at least two arguments"),
        ("XOR('A.peer')", "unrecognized token 'XOR'"),
        ("OR('A.peer'", "unexpected end"),
        ("OR('A.peer') junk", "unexpected token"),
        ("", "empty policy"),
        ("OR(" * 100 + "'A.peer'" + ")" * 100, "nested deeper"),
    ],
)
def test_malformed_policies_get_clear_errors(text: str, error: str) -> None:
    with pytest.raises(PolicyError, match=error):
        from_string(text)


# --- evaluation ------------------------------------------------------------------------------


def _sig(ident: SigningIdentity, data: bytes = b"tx") -> SignedData:
    return SignedData(data, ident.serialized, ident.sign(data))


def test_and_needs_both_orgs_and_a_signer_counts_once(orgs: Path) -> None:
    mgr = manager(orgs)
    p1, p2 = member(orgs, 1, "peer0"), member(orgs, 2, "peer0")
    both = from_string("AND('Org1MSP.peer', 'Org2MSP.peer')")
    evaluate(both, [_sig(p1), _sig(p2)], mgr)
    for signed in ([_sig(p1)], [_sig(p1), _sig(p1)], [_sig(p2), _sig(member(orgs, 2, "User1@"))]):
        with pytest.raises(PolicyError, match="signature set did not satisfy policy"):
            evaluate(both, signed, mgr)
    twice = from_string("AND('Org1MSP.member', 'Org1MSP.member')")
    with pytest.raises(PolicyError):
        evaluate(twice, [_sig(p1), _sig(p1)], mgr)  # the same signer is de-duplicated
    evaluate(twice, [_sig(p1), _sig(member(orgs, 1, "User1@"))], mgr)


def test_roles_admin_client_and_forged_signatures(orgs: Path) -> None:
    mgr = manager(orgs)
    admin, user = member(orgs, 1, "Admin@"), member(orgs, 1, "User2@")
    evaluate(from_string("OR('Org1MSP.admin')"), [_sig(admin)], mgr)
    evaluate(from_string("OR('Org1MSP.client')"), [_sig(user)], mgr)
    evaluate(from_string("OR('Org1MSP.member')"), [_sig(admin)], mgr)
    for policy, signer in (("OR('Org1MSP.admin')", user), ("OR('Org1MSP.peer')", admin)):
        with pytest.raises(PolicyError):
            evaluate(from_string(policy), [_sig(signer)], mgr)
    forged = SignedData(b"tx", user.serialized, user.sign(b"other"))
    with pytest.raises(PolicyError):
        evaluate(from_string("OR('Org1MSP.client')"), [forged], mgr)
    imposter = Identity("Org1MSP", member(orgs, 2, "User1@").cert, member(orgs, 2, "User1@").pem)
    with pytest.raises(PolicyError):  # Org2's certificate claiming Org1 fails validation
        evaluate(
            from_string("OR('Org1MSP.client')"),
            [SignedData(b"tx", imposter.serialized, member(orgs, 2, "User1@").sign(b"tx"))],
            mgr,
        )


def test_evaluation_is_greedy_without_backtracking_as_in_fabric(orgs: Path) -> None:
    """'member' takes the first signer (the peer), then 'peer' finds only the client: Fabric
    fails this policy for signers in this order and passes it for the other order."""
    mgr = manager(orgs)
    peer, user = member(orgs, 1, "peer0"), member(orgs, 1, "User1@")
    policy = from_string("OutOf(2, 'Org1MSP.member', 'Org1MSP.peer')")
    with pytest.raises(PolicyError):
        evaluate(policy, [_sig(peer), _sig(user)], mgr)
    evaluate(policy, [_sig(user), _sig(peer)], mgr)


def test_envelope_version_and_indices_are_checked(orgs: Path) -> None:
    env = from_string("OR('Org1MSP.peer')")
    env.version = 1
    with pytest.raises(PolicyError, match="only understands messages of version 0"):
        evaluate(env, [], manager(orgs))
    bad = SignaturePolicyEnvelope(rule=_out_of(1, _signed_by(3)))
    with pytest.raises(PolicyError, match="identity index out of range"):
        evaluate(bad, [], manager(orgs))


def test_crypto_command_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cryptogen.main(["--orgs", "Org1MSP,Org1MSP", "--out", str(tmp_path)]) == 2
    assert cryptogen.main(["--orgs", "bad id!", "--out", str(tmp_path)]) == 2
    assert "invalid MSP id" in capsys.readouterr().err
