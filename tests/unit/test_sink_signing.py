"""The webhook signature scheme (sinks.signing): t=<ts>,v1=<hex hmac-sha256 of "<ts>." + body>."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from ordersync.sinks.signing import sign, verify

SECRET = b"s3cret-for-tests"
BODY = '{"sink":"shop","events":[{"id":1,"payload":{"name":"Чай"}}]}'.encode()
T = 1_700_000_000


def test_the_signature_is_an_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET, b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, T, BODY) == f"t=1700000000,v1={expected}"


def test_the_right_secret_verifies() -> None:
    assert verify(SECRET, sign(SECRET, T, BODY), BODY, now=T + 5)


def test_a_wrong_secret_does_not_verify() -> None:
    assert not verify(b"another-secret", sign(SECRET, T, BODY), BODY, now=T)


def test_a_tampered_body_does_not_verify() -> None:
    tampered = BODY.replace("Чай".encode(), "Кофе".encode())
    assert tampered != BODY
    assert not verify(SECRET, sign(SECRET, T, BODY), tampered, now=T)


def test_a_changed_timestamp_does_not_verify() -> None:
    signature = sign(SECRET, T, BODY).split(",")[1]
    assert not verify(SECRET, f"t={T + 1},{signature}", BODY, now=T)


def test_an_old_timestamp_is_refused_even_with_a_valid_signature() -> None:
    header = sign(SECRET, T, BODY)
    assert verify(SECRET, header, BODY, now=T + 300)
    assert not verify(SECRET, header, BODY, now=T + 301)
    assert not verify(SECRET, header, BODY, now=T + 3600, tolerance_seconds=600)


def test_a_timestamp_far_in_the_future_is_refused() -> None:
    assert not verify(SECRET, sign(SECRET, T + 1000, BODY), BODY, now=T)


def test_any_of_several_v1_signatures_may_match_for_secret_rotation() -> None:
    old = sign(b"old-secret", T, BODY).split(",")[1]
    new = sign(SECRET, T, BODY).split(",")[1]
    assert verify(SECRET, f"t={T},{old},{new}", BODY, now=T)
    assert not verify(b"third-secret", f"t={T},{old},{new}", BODY, now=T)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        f"v1={'0' * 64}",  # no timestamp
        f"t={T}",  # no signature
        f"t=abc,v1={'0' * 64}",
        f"t=-{T},v1={'0' * 64}",
        f"t={T},t={T},v1={'0' * 64}",
        f"t={T},v1=ключ",  # non-ASCII must not raise
    ],
)
def test_malformed_headers_do_not_verify(header: str) -> None:
    assert not verify(SECRET, header, BODY, now=T)


def test_a_valid_header_with_a_malformed_twin_still_needs_the_real_signature() -> None:
    # the signature of the real body, correctly formatted, is what makes verify pass:
    good = sign(SECRET, T, BODY)
    assert verify(SECRET, good.replace("t=", " t="), BODY, now=T)  # whitespace tolerated
    assert not verify(SECRET, good[:-1] + ("0" if good[-1] != "0" else "1"), BODY, now=T)
