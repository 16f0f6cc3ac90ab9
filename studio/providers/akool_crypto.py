"""AKOOL's signed and encrypted callbacks (shared/providers.md §5).

A callback is `{"signature", "dataEncrypt", "timestamp", "nonce"}`. The signature is the SHA-1 hex
of the four strings clientId, timestamp, nonce and dataEncrypt, sorted and joined; dataEncrypt is
base64 of AES-CBC (key: the client secret's UTF-8 bytes, IV: the client id's UTF-8 bytes, PKCS#7
padding) over the task as JSON. Only a signature that matches and a payload that decrypts prove the
sender; anything else is refused and changes nothing."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

AES_KEY_LENGTHS = (16, 24, 32)
IV_LENGTH = 16
MAX_CIPHERTEXT = 64 * 1024


class CallbackRefused(ValueError):
    pass


def check_credentials(client_id: str, client_secret: str) -> str:
    """Why these credentials cannot decrypt callbacks ("" when they can), for start-up checks."""
    if len(client_secret.encode()) not in AES_KEY_LENGTHS:
        return "AKOOL_CLIENT_SECRET must be 16, 24 or 32 bytes long (it is the AES key)"
    if len(client_id.encode()) != IV_LENGTH:
        return "AKOOL_CLIENT_ID must be 16 bytes long (it is the AES IV)"
    return ""


def signature(client_id: str, timestamp, nonce, data_encrypt: str) -> str:
    joined = "".join(sorted([client_id, str(timestamp), str(nonce), data_encrypt]))
    return hashlib.sha1(joined.encode()).hexdigest()


def _cipher(client_id: str, client_secret: str) -> Cipher:
    return Cipher(algorithms.AES(client_secret.encode()), modes.CBC(client_id.encode()))


def open_callback(client_id: str, client_secret: str, body: dict) -> dict:
    """The task a genuine callback carries; CallbackRefused for anything else."""
    if not isinstance(body, dict):
        raise CallbackRefused("The body is not a JSON object.")
    sent, data, timestamp, nonce = (
        body.get(k) for k in ("signature", "dataEncrypt", "timestamp", "nonce")
    )
    if not (isinstance(sent, str) and isinstance(data, str)) or timestamp is None or nonce is None:
        raise CallbackRefused("The callback lacks its signature, data, timestamp or nonce.")
    if isinstance(timestamp, bool | dict | list) or isinstance(nonce, bool | dict | list):
        raise CallbackRefused("The timestamp and nonce must be numbers or strings.")
    if len(data) > MAX_CIPHERTEXT:
        raise CallbackRefused("The encrypted data is too long.")
    expected = signature(client_id, timestamp, nonce, data)
    if not hmac.compare_digest(expected, sent.lower()):
        raise CallbackRefused("The signature does not match.")
    try:
        raw = base64.b64decode(data, validate=True)
        decryptor = _cipher(client_id, client_secret).decryptor()
        padded = decryptor.update(raw) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        task = json.loads(unpadder.update(padded) + unpadder.finalize())
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise CallbackRefused("The data does not decrypt.") from None
    if not isinstance(task, dict):
        raise CallbackRefused("The decrypted data is not a task.")
    return task
