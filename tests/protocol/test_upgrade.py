"""The WebSocket opening handshake, sans-I/O: which request heads Tidings takes as its own."""

from __future__ import annotations

import pytest

from tidings.protocol.upgrade import (MAX_HEAD_BYTES, http_response, negotiate_subprotocol,
                                      parse_upgrade, request_path, switching_protocols)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3's example


def head(*, method: str = "GET", target: str = "/ws", version: str = "HTTP/1.1",
         **fields: str) -> bytes:
    headers = {"Host": "example.com", "Upgrade": "websocket", "Connection": "Upgrade",
               "Sec-WebSocket-Key": KEY, "Sec-WebSocket-Version": "13"}
    for name, value in fields.items():
        name = name.replace("_", "-")
        if value is None:
            headers.pop(name)
        else:
            headers[name] = value
    lines = [f"{method} {target} {version}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_well_formed_upgrade_is_taken_with_its_path_query_headers_and_early_bytes():
    request = parse_upgrade(head(target="/ws?token=abc", Origin="https://app.example")
                            + b"\x81\x80frames")
    assert request is not None
    assert (request.path, request.query, request.key) == ("/ws", "token=abc", KEY)
    assert request.headers["origin"] == "https://app.example"  # case-insensitive
    assert request.early == b"\x81\x80frames"


def test_upgrade_and_connection_are_token_lists_in_any_case():
    assert parse_upgrade(head(Upgrade="WebSocket", Connection="keep-alive, UPGRADE"))


@pytest.mark.parametrize("broken", [
    head(method="POST"),
    head(version="HTTP/1.0"),
    head(Upgrade=None),
    head(Upgrade="h2c"),
    head(Connection="keep-alive"),
    head(Sec_WebSocket_Version="8"),
    head(Sec_WebSocket_Key=None),
    head(Sec_WebSocket_Key="c2hvcnQ="),  # 5 bytes, not 16
    head(Sec_WebSocket_Key="not base64!!"),
    head(Host=None),  # HTTP/1.1 requires it
    b"GET /ws HTTP/1.1\r\nHost example.com\r\n\r\n",  # no colon
])
def test_anything_else_is_left_to_the_http_server(broken):
    assert parse_upgrade(broken) is None


def test_an_unfinished_or_oversized_head_is_not_an_upgrade():
    assert parse_upgrade(head()[:-2]) is None
    padded = head(X_Padding="x" * MAX_HEAD_BYTES)
    assert parse_upgrade(padded) is None


def test_the_request_path_is_known_at_the_first_line():
    assert request_path(b"GET /w") is None
    assert request_path(b"GET /ws?x=1 HTTP/1.1\r\n") == "/ws"
    assert request_path(b"POST /ws HTTP/1.1\r\n") == ""
    assert request_path(b"nonsense\r\n") == ""


def test_the_101_carries_the_accept_key_of_rfc_6455s_example():
    response = switching_protocols(KEY)
    assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in response
    assert response.endswith(b"\r\n\r\n")


def test_the_query_parameters_are_decoded_blank_ones_kept():
    request = parse_upgrade(head(target="/stomp?token=a%2Bb&user=j+doe&flag="))
    assert dict(request.params()) == {"token": "a+b", "user": "j doe", "flag": ""}


def test_offered_subprotocols_are_read_in_order_across_repeated_headers():
    data = head(Sec_WebSocket_Protocol="v10.stomp, v12.stomp").replace(
        b"\r\n\r\n", b"\r\nSec-WebSocket-Protocol: v11.stomp\r\n\r\n")
    assert parse_upgrade(data).offered() == ["v10.stomp", "v12.stomp", "v11.stomp"]
    assert parse_upgrade(head()).offered() == []


SUPPORTED = ("v12.stomp", "v11.stomp", "v10.stomp")


@pytest.mark.parametrize("offered, chosen", [
    (["v10.stomp", "v12.stomp"], "v10.stomp"),  # the client's order, not the server's
    (["mqtt", "v11.stomp"], "v11.stomp"),  # the first one the server supports
    (["mqtt", "wamp"], None),  # none supported: no subprotocol
    ([], None),  # none offered: none named
    (["V12.STOMP"], None),  # subprotocol names are compared exactly
])
def test_the_first_offered_subprotocol_the_server_supports_is_chosen(offered, chosen):
    assert negotiate_subprotocol(offered, SUPPORTED) == chosen


def test_the_101_names_the_chosen_subprotocol_and_no_header_without_one():
    response = switching_protocols(KEY, "v12.stomp")
    assert b"\r\nSec-WebSocket-Protocol: v12.stomp\r\n" in response
    assert response.endswith(b"\r\n\r\n") and response.count(b"\r\n\r\n") == 1
    assert b"Sec-WebSocket-Protocol" not in switching_protocols(KEY, None)


def test_a_refusal_is_a_whole_response_that_closes_the_connection():
    response = http_response(429, b'{"error":1}', {"Retry-After": "1"})
    head_part, body = response.split(b"\r\n\r\n")
    assert head_part.split(b"\r\n")[0] == b"HTTP/1.1 429 Too Many Requests"
    assert b"Content-Length: 11" in head_part and b"Connection: close" in head_part
    assert b"Retry-After: 1" in head_part and body == b'{"error":1}'
