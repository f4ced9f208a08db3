"""The SIP admission decisions (gateway/sip/admission.py), pure: the source allow list and the per-source
call quota."""

from __future__ import annotations

import pytest

from callscribe.config import Config
from callscribe.errors import ConfigError
from callscribe.gateway.sip.admission import DEFAULT_ALLOW, Admission, normalize, parse_networks


def test_allow_list_addresses_and_networks():
    a = Admission(("10.0.0.0/8", "192.0.2.7", "2001:db8::/32"))
    assert a.allowed("10.1.2.3") and a.allowed("192.0.2.7") and a.allowed("2001:db8::1")
    assert not a.allowed("192.0.2.8") and not a.allowed("11.0.0.1") and not a.allowed("2001:db9::1")
    assert not a.allowed("127.0.0.1") and not a.allowed("::1")
    assert a.allowed("::ffff:10.9.9.9")  # an IPv4 peer on a socket bound to ::
    assert not a.allowed("not an address") and not a.allowed("")
    assert Admission(("fe80::/10",)).allowed("fe80::1%eth0")  # the scope is not part of the address


def test_defaults_host_bits_and_bad_entries():
    d = Admission()
    assert d.networks == parse_networks(DEFAULT_ALLOW)
    assert d.allowed("127.0.0.1") and d.allowed("127.0.0.2") and d.allowed("::1") and not d.allowed("10.0.0.1")
    assert str(parse_networks(["10.0.0.5/8"])[0]) == "10.0.0.0/8"  # as the config check reads it
    assert parse_networks(["", " 10.0.0.1 "])[0].num_addresses == 1
    with pytest.raises(ConfigError, match="sip_allow"):
        parse_networks(["10.0.0.0/33"])
    with pytest.raises(ConfigError, match="sip_allow"):
        parse_networks(["example.com"])


def test_empty_list_allows_nobody_and_enforce_off_allows_everybody():
    assert not Admission(()).allowed("127.0.0.1")
    off = Admission(("10.0.0.0/8",), enforce=False)
    assert off.allowed("127.0.0.1") and off.allowed("203.0.113.9") and off.allowed("junk")


def test_per_source_quota_counts_and_releases():
    a = Admission(quota=2)
    assert a.admit("10.0.0.1") and a.admit("10.0.0.1")
    assert a.over_quota("10.0.0.1") and not a.admit("10.0.0.1")  # refused: nothing counted
    assert a.live("10.0.0.1") == 2
    assert a.admit("10.0.0.2") and a.live("10.0.0.2") == 1  # another source still gets in
    assert a.live("::ffff:10.0.0.1") == 2  # the same source seen on a dual-stack socket
    a.release("10.0.0.1")
    assert not a.over_quota("10.0.0.1") and a.admit("10.0.0.1")
    for _ in range(2):
        a.release("10.0.0.1")
    a.release("10.0.0.2")
    a.release("10.0.0.2")  # one release too many never goes negative
    assert a.sources == {} and a.live("10.0.0.1") == 0


def test_no_quota_means_unlimited():
    a = Admission(quota=0)
    assert all(a.admit("10.0.0.1") for _ in range(1000)) and a.live("10.0.0.1") == 1000


def test_allow_cache_is_bounded():
    a = Admission(("10.0.0.0/8",))
    for i in range(5000):
        a.allowed(f"192.0.{i // 256}.{i % 256}")
    assert len(a._cache) <= 4096 and a.allowed("10.0.0.1")


def test_from_config():
    cfg = Config()
    a = Admission.from_config(cfg)
    assert a.enforce and a.allowed("127.0.0.1") and a.allowed("::1") and not a.allowed("192.0.2.1")
    c2 = cfg.replace(sip_allow=("192.0.2.0/24",), ingest_auth=False, source_max_calls=3, max_calls=10)
    a2 = Admission.from_config(c2)
    assert not a2.enforce and a2.quota == 3 == c2.source_quota and a2.allowed("10.0.0.1")
    a3 = Admission.from_config(c2.replace(ingest_auth=True))
    assert a3.allowed("192.0.2.9") and not a3.allowed("127.0.0.1")
    assert Admission.from_config(cfg.replace(max_calls=10)).quota == 8  # 0 = 80% of max_calls


def test_normalize():
    assert str(normalize("::ffff:192.0.2.1")) == "192.0.2.1" and normalize("x") is None
