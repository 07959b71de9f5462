"""
Encryption at rest for machine credentials (lease SSH keys, host admin keys).

Fernet (AES-128-CBC + HMAC-SHA256) with MultiFernet, so keys can be rotated: the first key
in ``BASELINER_FERNET_KEYS`` encrypts, every listed key decrypts. In development, with no key
configured, a key is derived from SECRET_KEY so the embedded default works out of the box;
production refuses to start without explicit keys (see settings).
"""
import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    if not keys:
        derived = base64.urlsafe_b64encode(hashlib.sha256(b"baseliner-fernet:" + secret_key.encode()).digest())
        keys = (derived.decode(),)
    return MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.BASELINER_FERNET_KEYS), settings.SECRET_KEY)


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    return fernet().decrypt(token.encode()).decode()
