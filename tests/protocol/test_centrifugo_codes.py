"""Tidings' codes as Centrifugo's: the SDKs must reconnect (or stop) as Tidings means."""

from __future__ import annotations

import pytest

from tidings.errors import CloseCode, ErrorCode
from tidings.protocol.centrifugo_codes import (
    CentrifugoDisconnect,
    CentrifugoError,
    disconnect_for,
    error_for,
)


@pytest.mark.parametrize("code", list(CloseCode))
def test_every_close_code_keeps_its_reconnect_advice(code):
    mapped = disconnect_for(code)
    tidings_reconnects = 4000 <= code < 4500 or code == CloseCode.SERVER_ERROR
    centrifugo_reconnects = 3000 <= mapped < 3500
    if code in (CloseCode.NORMAL, CloseCode.MESSAGE_TOO_BIG):
        assert mapped == code  # transport codes the SDKs read themselves
    else:
        assert tidings_reconnects == centrifugo_reconnects, (code, mapped)


def test_centrifugo_codes_pass_through_unchanged():
    assert disconnect_for(CentrifugoDisconnect.NOT_AVAILABLE) == 3508


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_has_a_centrifugo_error(code):
    assert isinstance(error_for(code, "x"), CentrifugoError)


def test_expired_and_revoked_credentials_ask_the_sdk_for_a_new_token():
    assert error_for(ErrorCode.UNAUTHORIZED, "token expired") == CentrifugoError.TOKEN_EXPIRED
    assert error_for(ErrorCode.BAD_SUBSCRIPTION_TOKEN, "subscription token revoked") == \
        CentrifugoError.TOKEN_REVOKED
    assert error_for(ErrorCode.UNAUTHORIZED, "invalid token: bad") == \
        CentrifugoError.UNAUTHORIZED
