"""Who is asking: the client address behind trusted reverse proxies only."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from starlette.requests import Request

from service.http.deps import client_address
from service.settings import Settings


def _request(peer: str, forwarded: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers, "client": (peer, 50000)})


def test_only_a_trusted_proxys_forwarded_for_is_believed_and_only_up_to_the_first_untrusted_hop() -> None:
    behind = Settings(_env_file=None, trusted_proxies="10.0.8.0/24, 127.0.0.1")  # type: ignore[call-arg]
    # a client straight to the service: its own X-Forwarded-For is its word, not believed
    assert client_address(_request("203.0.113.5", "198.51.100.7"), behind) == "203.0.113.5"
    # through the proxy: the address the proxy appended
    assert client_address(_request("10.0.8.2", "198.51.100.7"), behind) == "198.51.100.7"
    # a client that sends a forged hop first: the proxy's own entry (right-most untrusted) wins
    assert client_address(_request("10.0.8.2", "1.2.3.4, 198.51.100.7"), behind) == "198.51.100.7"
    # two proxies of ours in a row (an edge proxy, then one on this machine)
    assert client_address(_request("127.0.0.1", "198.51.100.7, 10.0.8.9"), behind) == "198.51.100.7"
    # a hop that is no address (garbage the proxy passed on) counts as untrusted, never as a proxy
    assert client_address(_request("10.0.8.2", "evil, 198.51.100.7"), behind) == "198.51.100.7"
    # from the proxy with no header: the proxy itself
    assert client_address(_request("10.0.8.2"), behind) == "10.0.8.2"

    direct = Settings(_env_file=None)  # type: ignore[call-arg]
    assert direct.proxy_networks == ()
    assert client_address(_request("10.0.8.2", "198.51.100.7"), direct) == "10.0.8.2"
    # the older switch alone: a proxy on this machine
    legacy = Settings(_env_file=None, trust_proxy_headers=True)  # type: ignore[call-arg]
    assert client_address(_request("127.0.0.1", "198.51.100.7"), legacy) == "198.51.100.7"
    assert client_address(_request("10.0.8.2", "198.51.100.7"), legacy) == "10.0.8.2"


def test_a_trusted_proxy_that_is_no_address_is_refused_in_chinese() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, trusted_proxies="127.0.0.1, proxy.lan")  # type: ignore[call-arg]
    assert "DOCSIGN_TRUSTED_PROXIES" in str(refused.value) and "proxy.lan" in str(refused.value)
