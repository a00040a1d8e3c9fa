"""The Origin allow-list as a policy: which Origin and Host pairs are accepted."""

from __future__ import annotations

import pytest

from tidings.config import load_settings
from tidings.server.origin import OriginPolicy

SECRET = "a-secret-long-enough-for-hs256-signing"


def _policy(*allowed: str, auth: bool = True) -> OriginPolicy:
    extra = {"jwt_secret": SECRET} if auth else {}
    return OriginPolicy(load_settings(security={"allowed_origins": list(allowed)}, **extra))


def test_no_origin_is_a_non_browser_client_and_accepted():
    assert _policy().refusal(None, "chat.example.com") is None
    assert _policy(auth=False).refusal(None, "127.0.0.1:8000") is None


@pytest.mark.parametrize("origin, host", [
    ("https://chat.example.com", "chat.example.com"),
    ("https://chat.example.com", "CHAT.example.com:443"),
    ("http://chat.example.com:8000", "chat.example.com:8000"),
    ("HTTPS://Chat.Example.Com", "chat.example.com"),
    ("http://[::1]:8000", "[::1]:8000"),
])
def test_the_nodes_own_origin_is_accepted(origin, host):
    assert _policy().refusal(origin, host) is None


@pytest.mark.parametrize("origin, host", [
    ("https://evil.example", "chat.example.com"),
    ("https://chat.example.com:8443", "chat.example.com"),
    ("https://chat.example.com.evil.example", "chat.example.com"),
    ("https://chat.example.com", None),
])
def test_another_origin_is_refused(origin, host):
    assert _policy().refusal(origin, host) is not None


def test_configured_origins_are_accepted_exactly():
    policy = _policy("https://app.example.com", "http://localhost:3000/")
    assert policy.refusal("https://app.example.com", "gw.example.com") is None
    assert policy.refusal("http://localhost:3000", "gw.example.com") is None
    for other in ("http://app.example.com", "https://app.example.com:444",
                  "https://sub.app.example.com", "http://localhost:3001"):
        assert policy.refusal(other, "gw.example.com") is not None


def test_a_subdomain_wildcard_matches_subdomains_only():
    policy = _policy("https://*.example.com")
    assert policy.refusal("https://a.example.com", "gw") is None
    assert policy.refusal("https://a.b.example.com", "gw") is None
    assert policy.refusal("https://example.com", "gw") is not None
    assert policy.refusal("https://evilexample.com", "gw") is not None
    assert policy.refusal("http://a.example.com", "gw") is not None


def test_a_star_accepts_any_origin_and_null_only_when_listed():
    assert _policy("*").refusal("https://anything.example", "gw") is None
    assert _policy("*").refusal("null", "gw") is not None
    assert _policy("null").refusal("null", "gw") is None


@pytest.mark.parametrize("origin", ["not a url", "ftp://x.example", "https://", "https://a/b",
                                    "https://a:99999"])
def test_a_malformed_origin_is_refused(origin):
    assert _policy("*").refusal(origin, "gw") is not None


@pytest.mark.parametrize("origin", ["http://localhost:3000", "http://127.0.0.1", "http://127.1.2.3:9",
                                    "http://[::1]:8000", "https://localhost"])
def test_insecure_mode_accepts_loopback_pages(origin):
    assert _policy(auth=False).refusal(origin, "127.0.0.1:8000") is None


@pytest.mark.parametrize("origin, host", [
    ("https://evil.example", "127.0.0.1:8000"),
    ("http://evil.example:8000", "evil.example:8000"),  # DNS rebinding: same origin, still no
    ("null", "127.0.0.1:8000"),
])
def test_insecure_mode_refuses_every_other_page_whatever_is_configured(origin, host):
    assert _policy("*", "null", "http://evil.example:8000", auth=False).refusal(origin,
                                                                              host) is not None


@pytest.mark.parametrize("entry", ["example.com", "https://", "*.example.com", "https://a/b"])
def test_a_malformed_allowed_origin_is_a_setting_error(entry):
    with pytest.raises(ValueError, match="allowed_origins"):
        _policy(entry)
