"""Contract: method-per-function chaincode routing."""

from __future__ import annotations

from typing import Any

import pytest

from actors.shim import Contract, success


class FakeStub:
    def __init__(self, *args: str) -> None:
        self.args = args

    def get_function_and_parameters(self) -> tuple[str, list[str]]:
        return self.args[0], list(self.args[1:])


class Sample(Contract):
    def fn_echo(self, stub: Any, word: str, times: str = "1") -> Any:
        return success(word * int(times))

    def fn_buggy(self, stub: Any) -> Any:
        return len(None)  # type: ignore[arg-type]  # a bug inside the function

    def fn_join(self, stub: Any, first: str, *rest: str) -> Any:
        return success("+".join((first, *rest)))

    def fn_keyed(self, stub: Any, word: str, *, mode: str) -> Any:
        return success(word + mode)  # no call from the peer can fill ``mode``


def test_routes_to_the_method_with_its_parameters() -> None:
    assert Sample().invoke(FakeStub("echo", "ab", "3")).payload == b"ababab"  # type: ignore[arg-type]
    assert Sample().invoke(FakeStub("echo", "ab")).payload == b"ab"  # type: ignore[arg-type]
    joined = Sample().invoke(FakeStub("join", "a", "b", "c"))  # type: ignore[arg-type]
    assert joined.payload == b"a+b+c"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope",), "unknown function 'nope'"),
        (("__class__",), "unknown function '__class__'"),
        (("echo",), "bad arguments for echo"),
        (("echo", "a", "b", "c"), "bad arguments for echo: too many positional arguments"),
        (("join",), "bad arguments for join: missing a required argument: 'first'"),
        (("keyed", "w"), "bad arguments for keyed: missing a required argument: 'mode'"),
    ],
)
def test_unknown_functions_and_wrong_arity_are_400(args: tuple[str, ...], message: str) -> None:
    response = Sample().invoke(FakeStub(*args))  # type: ignore[arg-type]
    assert response.status == 400
    assert response.message.startswith(message)


def test_an_error_inside_a_function_is_not_mistaken_for_bad_arguments() -> None:
    with pytest.raises(TypeError, match="NoneType"):
        Sample().invoke(FakeStub("buggy"))  # type: ignore[arg-type]
