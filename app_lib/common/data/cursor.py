"""Opaque, tamper-evident page cursors: DynamoDB's LastEvaluatedKey, signed with HMAC-SHA256.

The signature also covers the listing the cursor belongs to (table, index, filters), so a cursor
from another listing is refused instead of silently returning a different page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
from functools import lru_cache
from typing import Any

from app_lib.common.config import get_settings
from app_lib.common.errors import InvalidCursorError

log = logging.getLogger(__name__)


@lru_cache
def _secret() -> bytes:
    configured = get_settings().cursor_secret
    if configured:
        return configured.encode()
    if not get_settings().embedded:
        log.warning("CURSOR_SECRET is not set: cursors will not survive a restart or scale-out")
    return secrets.token_bytes(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(context: str, payload: bytes) -> bytes:
    return hmac.new(_secret(), context.encode() + b"\x00" + payload, hashlib.sha256).digest()[:16]


def encode(key: dict[str, Any], context: str) -> str:
    payload = json.dumps(key, separators=(",", ":"), sort_keys=True).encode()
    return f"{_b64(payload)}.{_b64(_mac(context, payload))}"


def decode(cursor: str, context: str) -> dict[str, Any]:
    try:
        payload_text, mac_text = cursor.split(".")
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except (ValueError, binascii.Error):
        raise InvalidCursorError("the cursor is malformed") from None
    if not hmac.compare_digest(mac, _mac(context, payload)):
        raise InvalidCursorError("the cursor was modified or belongs to another listing")
    key = json.loads(payload)
    if not isinstance(key, dict):
        raise InvalidCursorError("the cursor is malformed")
    return key
