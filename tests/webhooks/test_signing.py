"""Standard Webhooks signatures against the spec's published vector."""

from __future__ import annotations

import pytest

from pbxis.webhooks.signing import (
    SignatureError,
    decode_secret,
    generate_secret,
    sign,
    signature_headers,
    verify,
)

# The vector of the standard-webhooks reference libraries (libraries/go/webhook_test.go
# TestWebhookSign; the same values in the JavaScript and Python suites).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_sign_matches_the_spec_vector() -> None:
    key = decode_secret(VECTOR_SECRET)
    assert sign(key, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_secret_prefix_is_optional_as_in_the_reference_libraries() -> None:
    assert decode_secret(VECTOR_SECRET[len("whsec_") :]) == decode_secret(VECTOR_SECRET)


def test_verify_accepts_the_vector_and_rejects_tampering() -> None:
    key = decode_secret(VECTOR_SECRET)
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    verify(key, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP + 10)
    with pytest.raises(SignatureError, match="no valid"):
        verify(key, headers, VECTOR_BODY + b" ", now=VECTOR_TIMESTAMP)
    with pytest.raises(SignatureError, match="no valid"):
        verify(key, {**headers, "webhook-id": "msg_other"}, VECTOR_BODY, now=VECTOR_TIMESTAMP)
    with pytest.raises(SignatureError, match="too far"):
        verify(key, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP + 301)
    with pytest.raises(SignatureError, match="missing header webhook-signature"):
        verify(key, {k: v for k, v in headers.items() if k != "webhook-signature"}, VECTOR_BODY, now=0)


def test_one_valid_signature_among_several_suffices() -> None:
    key = decode_secret(VECTOR_SECRET)
    many = f"v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,xx {VECTOR_SIGNATURE}"
    headers = {"webhook-id": VECTOR_ID, "webhook-timestamp": str(VECTOR_TIMESTAMP), "webhook-signature": many}
    verify(key, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)


def test_headers_carry_id_timestamp_and_signature() -> None:
    key = decode_secret(VECTOR_SECRET)
    assert signature_headers(key, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }


@pytest.mark.parametrize(
    ("secret", "message"),
    [("whsec_not base64!", "not a Standard Webhooks secret"), ("whsec_c2hvcnQ=", "decodes to 5 bytes")],
)
def test_bad_secrets_are_refused_with_a_reason(secret: str, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        decode_secret(secret)


def test_generated_secrets_decode_to_32_random_bytes() -> None:
    a, b = generate_secret(), generate_secret()
    assert a != b and a.startswith("whsec_")
    assert len(decode_secret(a)) == 32


def test_an_id_with_a_dot_is_refused() -> None:
    with pytest.raises(SignatureError, match="contains"):
        sign(b"k" * 32, "a.b", 1, b"{}")
