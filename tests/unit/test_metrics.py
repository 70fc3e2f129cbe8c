"""Shim request metrics: counted outside prometheus_client, exposed as its families."""

from __future__ import annotations

import threading

import pytest

from actors.metrics import Metrics


def test_shim_request_counts_and_buckets() -> None:
    metrics = Metrics(known={"channel": lambda c: c == "ch"})
    for seconds in (0.02, 0.02, 0.005):
        metrics.shim_request("GET_STATE", "ch", "cc")(True, seconds)
    metrics.shim_request("GET_STATE", "ch", "cc")(False, 20.0)
    pending = metrics.shim_request("PUT_STATE", "made-up", "cc")  # not completed yet
    labels = {"type": "GET_STATE", "channel": "ch", "chaincode": "cc"}
    ok = {**labels, "success": "true"}
    sample = metrics.registry.get_sample_value
    assert sample("chaincode_shim_requests_received_total", labels) == 4
    assert sample("chaincode_shim_requests_completed_total", ok) == 3
    assert sample("chaincode_shim_requests_completed_total", {**labels, "success": "false"}) == 1
    assert sample("chaincode_shim_request_duration_count", ok) == 3
    assert sample("chaincode_shim_request_duration_sum", ok) == pytest.approx(0.045)
    # Cumulative buckets, a bound counting the values up to and including it (as Go's).
    assert sample("chaincode_shim_request_duration_bucket", {**ok, "le": "0.005"}) == 1
    assert sample("chaincode_shim_request_duration_bucket", {**ok, "le": "0.01"}) == 1
    assert sample("chaincode_shim_request_duration_bucket", {**ok, "le": "0.025"}) == 3
    assert sample("chaincode_shim_request_duration_bucket", {**ok, "le": "+Inf"}) == 3
    failed = {**labels, "success": "false"}
    assert sample("chaincode_shim_request_duration_bucket", {**failed, "le": "10.0"}) == 0
    assert sample("chaincode_shim_request_duration_bucket", {**failed, "le": "+Inf"}) == 1
    unknown = {"type": "PUT_STATE", "channel": "unknown", "chaincode": "cc"}
    assert sample("chaincode_shim_requests_received_total", unknown) == 1
    assert sample("chaincode_shim_requests_completed_total", {**unknown, "success": "true"}) is None
    pending(True, 0.001)
    assert sample("chaincode_shim_requests_completed_total", {**unknown, "success": "true"}) == 1
    text = metrics.exposition().decode()
    assert (
        'chaincode_shim_request_duration_bucket{chaincode="cc",channel="ch",success="true",'
        'type="GET_STATE",le="0.025"} 3\n'
    ) in text
    assert 'chaincode_shim_requests_received{chaincode="cc",channel="ch",type="GET_STATE"} 4\n' in (
        text
    )
    assert "# TYPE chaincode_shim_request_duration histogram\n" in text


def test_shim_request_counts_from_many_threads() -> None:
    metrics = Metrics()

    def serve() -> None:
        for _ in range(2000):
            metrics.shim_request("GET_STATE", "ch", "cc")(True, 0.001)

    threads = [threading.Thread(target=serve) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    labels = {"type": "GET_STATE", "channel": "ch", "chaincode": "cc"}
    sample = metrics.registry.get_sample_value
    assert sample("chaincode_shim_requests_received_total", labels) == 8000
    assert sample("chaincode_shim_request_duration_count", {**labels, "success": "true"}) == 8000
