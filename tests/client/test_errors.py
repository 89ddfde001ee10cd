"""Error responses become one-line exceptions that name what went wrong."""

from __future__ import annotations

from peephole.client import AuthError, InvalidRequest, NotFound, PeepholeError
from peephole.client.errors import error_for


def test_401_and_403_keep_the_servers_reason() -> None:
    bad = error_for(401, {"detail": "unknown token"}, "http://h/api/v1/me")
    assert isinstance(bad, AuthError)
    assert str(bad) == "the server refused the token: unknown token"
    role = error_for(403, {"detail": "needs the debugger role"}, "http://h/api/v1/probes")
    assert isinstance(role, AuthError) and role.status == 403
    assert str(role) == "permission denied: needs the debugger role"


def test_404_names_the_resource() -> None:
    error = error_for(404, {"detail": "probe 'abc' not found"}, "http://h", "probe")
    assert isinstance(error, NotFound)
    assert (str(error), error.resource) == ("probe 'abc' not found", "probe")


def test_422_names_the_first_field() -> None:
    detail = [
        {"loc": ["body", "line"], "msg": "Input should be greater than 0", "type": "x"},
        {"loc": ["body", "target", "service"], "msg": "bad", "type": "y"},
    ]
    error = error_for(422, {"detail": detail}, "http://h")
    assert isinstance(error, InvalidRequest)
    assert error.field == "line"
    assert str(error) == "invalid line: Input should be greater than 0 (and 1 more)"


def test_422_with_a_plain_reason() -> None:
    error = error_for(422, {"detail": "a logpoint needs a template"}, "http://h")
    assert isinstance(error, InvalidRequest) and error.field is None
    assert str(error) == "invalid request: a logpoint needs a template"


def test_other_statuses_are_one_line() -> None:
    error = error_for(504, {"detail": "the agent did not answer\nin 5 s"}, "http://h/x")
    assert type(error) is PeepholeError
    assert "\n" not in str(error)
    assert str(error) == "the server answered 504 for http://h/x: the agent did not answer in 5 s"


def test_422_drops_the_validators_prefix() -> None:
    detail = [
        {
            "loc": ["body", "redact_patterns", 0],
            "msg": "Value error, bad regular expression '(': missing ), unterminated "
            "subpattern at position 0",
            "type": "value_error",
        }
    ]
    error = error_for(422, {"detail": detail}, "http://h")
    assert isinstance(error, InvalidRequest)
    assert error.reason.startswith("bad regular expression '('")
    assert "Value error" not in str(error)
