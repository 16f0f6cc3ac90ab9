"""AKOOL's callbacks: only a matching signature over data that decrypts is accepted."""

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from studio.providers.akool_crypto import CallbackRefused, check_credentials, open_callback

CLIENT_ID = "abcdefghij123456"  # 16 bytes: the IV
SECRET = "0123456789abcdef0123456789abcdef"  # 32 bytes: an AES-256 key
TASK = {"_id": "64b7c0f2a1b2c3d4e5f60718", "status": 3, "type": "image2video", "url": "https://v"}


def documented_callback(task=TASK, *, timestamp=1710000000000, nonce=4821) -> dict:
    """Built from the recipe in shared/providers.md, independently of the code under test."""
    padder = padding.PKCS7(128).padder()
    plain = padder.update(json.dumps(task).encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(SECRET.encode()), modes.CBC(CLIENT_ID.encode())).encryptor()
    data = base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()
    joined = "".join(sorted([CLIENT_ID, str(timestamp), str(nonce), data]))
    return {
        "signature": hashlib.sha1(joined.encode()).hexdigest(),
        "dataEncrypt": data,
        "timestamp": timestamp,
        "nonce": nonce,
    }


@pytest.mark.parametrize("as_strings", [False, True])
def test_a_genuine_callback_opens_to_its_task(as_strings):
    body = documented_callback()
    if as_strings:  # numbers or strings: compared as strings either way
        body |= {"timestamp": str(body["timestamp"]), "nonce": str(body["nonce"])}
    assert open_callback(CLIENT_ID, SECRET, body) == TASK


@pytest.mark.parametrize(
    "change",
    [
        {"signature": "0" * 40},
        {"nonce": 1},
        {"timestamp": 1},
        {"dataEncrypt": "not base64!"},
        {"signature": None},
        {"timestamp": None},
        {"nonce": [1]},
    ],
)
def test_a_forged_or_altered_callback_is_refused(change):
    with pytest.raises(CallbackRefused):
        open_callback(CLIENT_ID, SECRET, documented_callback() | change)


def test_tampered_ciphertext_with_a_fresh_signature_still_fails_to_decrypt():
    body = documented_callback()
    raw = bytearray(base64.b64decode(body["dataEncrypt"]))
    raw[-1] ^= 0xFF  # breaks the padding of the last block
    data = base64.b64encode(bytes(raw)).decode()
    joined = "".join(sorted([CLIENT_ID, str(body["timestamp"]), str(body["nonce"]), data]))
    forged = body | {"dataEncrypt": data, "signature": hashlib.sha1(joined.encode()).hexdigest()}
    with pytest.raises(CallbackRefused, match="decrypt"):
        open_callback(CLIENT_ID, SECRET, forged)


def test_someone_elses_credentials_open_nothing():
    with pytest.raises(CallbackRefused):
        open_callback("zzzzzzzzzz123456", SECRET, documented_callback())


@pytest.mark.parametrize("body", [None, [], "x", {"signature": "a"}])
def test_malformed_bodies_are_refused(body):
    with pytest.raises(CallbackRefused):
        open_callback(CLIENT_ID, SECRET, body)


def test_credentials_aes_cannot_use_are_named():
    assert check_credentials(CLIENT_ID, SECRET) == ""
    assert "AKOOL_CLIENT_SECRET" in check_credentials(CLIENT_ID, "short")
    assert "AKOOL_CLIENT_ID" in check_credentials("short", SECRET)


def test_the_simulators_callbacks_open_and_its_forgeries_do_not():
    """The AKOOL simulator implements the same recipe on its own: both sides must agree."""
    from tests.simulators import akool

    data = akool.encrypt(CLIENT_ID, SECRET, TASK)
    body = {"dataEncrypt": data, "timestamp": "1710000000000", "nonce": 77}
    body["signature"] = akool.sign(CLIENT_ID, body["timestamp"], body["nonce"], data)
    assert open_callback(CLIENT_ID, SECRET, body) == TASK
    with pytest.raises(CallbackRefused):
        open_callback(CLIENT_ID, SECRET, body | {"nonce": 78})
