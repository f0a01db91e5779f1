"""Delivery bodies as stored: whatever goes in comes back out, compressed only where that helps."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prodops.webhooks import body_codec


@given(st.binary(max_size=4096) | st.text(max_size=2048).map(lambda t: (t * 3).encode()))
def test_every_body_comes_back_as_it_went_in(body: bytes) -> None:
    codec, stored = body_codec.encode(body)
    assert body_codec.decode(codec, stored) == body
    assert len(stored) <= len(body)


def test_a_body_is_compressed_only_where_that_makes_it_smaller() -> None:
    json = b'{"action": "opened", "issue": {"labels": []}, "repository": {}}' * 100
    assert body_codec.encode(json)[0] == "lz4"
    noise = os.urandom(4096)
    assert body_codec.encode(noise) == ("identity", noise)
    assert body_codec.encode(b"") == ("identity", b"")


def test_an_unknown_codec_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown body codec"):
        body_codec.decode("gzip", b"\x1f\x8b")
