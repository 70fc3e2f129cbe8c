"""Mutual TLS on the chaincode listener: certificates bound to the chaincode id they were
issued for at launch, and every other way in refused."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from actors.config import ChaincodeDefinition, Config
from actors.support import ChaincodeSupport
from actors.tls import ChaincodeTLS
from actors.transports import ConnectionClosed
from actors.transports.grpc import GrpcStream, dial
from protos.peer.chaincode_pb2 import ChaincodeID
from protos.peer.chaincode_shim_pb2 import ChaincodeMessage as CM
from tests.helpers import recv_within


@pytest.fixture
def support() -> Iterator[ChaincodeSupport]:
    config = Config(
        tls_enabled=True,
        channels=("ch",),
        chaincodes=(
            ChaincodeDefinition("kvt", runtime="process", target="examples.kv:KVChaincode"),
        ),
    )
    with ChaincodeSupport(config) as peer:
        peer.listen("127.0.0.1:0")
        yield peer


def _register(stream: GrpcStream, name: str) -> None:
    stream.send(CM(type=CM.REGISTER, payload=ChaincodeID(name=name).SerializeToString()))


def test_process_chaincode_runs_over_mutual_tls(support: ChaincodeSupport) -> None:
    result = support.invoke("ch", None, "kvt", ["put", "k", "v"])
    assert result.committed
    assert support.execute("ch", None, "kvt", ["get", "k"]).response.payload == b"v"


def test_certificate_binds_the_chaincode_id(support: ChaincodeSupport) -> None:
    address = support.peer_address()
    assert address is not None
    client = support.client_tls("impostor-target")
    assert client is not None
    credentials = grpc.ssl_channel_credentials(
        client.root_pem, client.pair.key_pem, client.pair.cert_pem
    )
    # The certificate was issued for "impostor-target"; registering as "kvt" is refused.
    stream, channel = dial(address, credentials=credentials)
    try:
        _register(stream, "kvt")
        refusal = recv_within(stream)
        assert refusal.type == CM.ERROR
        assert b"launched as 'impostor-target'" in refusal.payload
        with pytest.raises(ConnectionClosed):
            recv_within(stream)
    finally:
        stream.close()
        channel.close()


def _refused(address: str, credentials: grpc.ChannelCredentials | None) -> None:
    """Connecting and registering must end in ConnectionClosed, not in a READY."""
    with pytest.raises(ConnectionClosed):
        stream, channel = dial(address, credentials=credentials, timeout=3)
        try:
            _register(stream, "kvt")
            recv_within(stream)
        finally:
            stream.close()
            channel.close()


def test_unbound_and_foreign_certificates_are_refused(support: ChaincodeSupport) -> None:
    address = support.peer_address()
    assert address is not None and support.tls is not None
    root = support.tls.ca.cert_pem
    foreign = ChaincodeTLS().client_for("kvt")
    # A certificate from another CA fails the TLS handshake.
    _refused(
        address,
        grpc.ssl_channel_credentials(root, foreign.pair.key_pem, foreign.pair.cert_pem),
    )
    # No client certificate at all: the server requires one.
    _refused(address, grpc.ssl_channel_credentials(root))
    # Plain text against the TLS listener never gets to a Handler.
    _refused(address, None)
    # The real chaincode is unaffected by all of this.
    assert support.invoke("ch", None, "kvt", ["put", "x", "y"]).committed


def test_binding_is_per_issue_and_expires() -> None:
    tls = ChaincodeTLS()
    first = tls.client_for("a")
    second = tls.client_for("b")
    assert tls.chaincode_for(first.pair.cert_pem) == "a"
    assert tls.chaincode_for(second.pair.cert_pem) == "b"
    assert tls.chaincode_for(ChaincodeTLS().client_for("a").pair.cert_pem) is None
    tls._bindings = {h: (ccid, 0.0) for h, (ccid, _) in tls._bindings.items()}
    assert tls.chaincode_for(first.pair.cert_pem) is None


def test_tls_is_on_by_default_in_net_mode(caplog: pytest.LogCaptureFixture) -> None:
    """As in Fabric, TLS is what stops another process registering as a chaincode being
    launched: net mode has it unless turned off (--insecure), with a warning; dev mode,
    like Fabric's, is plaintext."""
    assert Config().tls and Config(mode="dev", tls_enabled=True).tls
    assert not Config(mode="dev").tls and not Config(tls_enabled=False).tls
    definition = ChaincodeDefinition("kvt", runtime="process", target="examples.kv:KVChaincode")
    with ChaincodeSupport(Config(channels=("ch",), chaincodes=(definition,))) as peer:
        address = peer.listen("127.0.0.1:0").dial_address()
        assert peer.tls is not None
        _refused(address, None)  # a plaintext client cannot even connect
        assert peer.invoke("ch", None, "kvt", ["put", "k", "v"]).committed
    assert "without TLS" not in caplog.text
    with ChaincodeSupport(Config(tls_enabled=False)) as peer:
        peer.listen("127.0.0.1:0")
        assert peer.tls is None
    assert "runs without TLS (insecure)" in caplog.text
