"""API keys: generated with enough entropy that a plain SHA-256 is a safe at-rest hash."""
import hashlib
import hmac
import secrets

KEY_PREFIX = "dk_"


def generate_key():
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(raw_key):
    return hashlib.sha256(raw_key.encode()).hexdigest()


def key_matches(raw_key, stored_hash):
    """Constant-time comparison, so response timing reveals nothing about stored hashes."""
    return hmac.compare_digest(hash_key(raw_key), stored_hash)
