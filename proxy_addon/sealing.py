"""The exact request a reviewer approved, encrypted at rest: it carries the agent's credentials.

The key lives outside the database: `HITL_PROXY_KEY` (a Fernet key) or `<data-dir>/seal.key`,
created 0600 on first start. A stolen database alone reveals no credential.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

KEY_ENV = "HITL_PROXY_KEY"
KEY_FILE = "seal.key"


class SealError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class HeldRequest:
    method: str
    url: str
    headers: list[tuple[str, str]]
    content: bytes

    def to_bytes(self) -> bytes:
        return json.dumps({
            "method": self.method,
            "url": self.url,
            "headers": self.headers,
            "content": base64.b64encode(self.content).decode(),
        }).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> HeldRequest:
        data = json.loads(raw)
        return cls(data["method"], data["url"], [tuple(pair) for pair in data["headers"]],
                   base64.b64decode(data["content"]))


def audit_key(seal_key: bytes) -> bytes:
    """The audit log's HMAC key, derived from the sealing key so both stay outside the DB."""
    return hashlib.sha256(b"hitl-proxy audit:" + seal_key).digest()


def load_key(data_dir: Path) -> bytes:
    """The existing key, for tools that must not create one (audit verify)."""
    if env_key := os.environ.get(KEY_ENV):
        return env_key.encode()
    path = data_dir / KEY_FILE
    if not path.exists():
        raise SealError(f"no sealing key: set {KEY_ENV} or keep {path}")
    return path.read_bytes().strip()


def key_location_warning(data_dir: Path) -> str | None:
    """Why a key kept in the data dir weakens the audit log, or None when it comes from outside.

    The audit chain's HMAC key derives from this key: whoever can write the data dir can then
    rewrite history and re-sign it, and only a witnessed head (`audit head` log lines, the
    hitl_audit_head metric, webhook payloads) still shows it.
    """
    if os.environ.get(KEY_ENV):
        return None
    return (f"the sealing key is {data_dir / KEY_FILE}, inside the data dir: whoever can write "
            f"the data dir can decrypt held requests and rewrite and re-sign the audit log. "
            f"Set {KEY_ENV} from a secret store instead, and keep the 'audit head' log lines "
            f"(or the hitl_audit_head metric) off this host to check with "
            f"`hitl-proxy audit verify --head SEQ:HASH`")


def load_or_create_key(data_dir: Path) -> bytes:
    if env_key := os.environ.get(KEY_ENV):
        key = env_key.encode()
    else:
        path = data_dir / KEY_FILE
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(Fernet.generate_key())
        key = path.read_bytes().strip()
    try:
        Fernet(key)
    except ValueError as exc:
        raise SealError(f"the sealing key ({KEY_ENV} or {data_dir / KEY_FILE}) is not a "
                        f"valid Fernet key: {exc}") from exc
    return key


class Sealer:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, request: HeldRequest) -> bytes:
        return self._fernet.encrypt(request.to_bytes())

    def seal_data(self, data: object) -> bytes:
        return self._fernet.encrypt(json.dumps(data).encode())

    def unseal_data(self, sealed: bytes) -> Any:
        try:
            return json.loads(self._fernet.decrypt(sealed))
        except InvalidToken as exc:
            raise SealError("the stored data cannot be decrypted with this key") from exc

    def unseal(self, sealed: bytes) -> HeldRequest:
        try:
            return HeldRequest.from_bytes(self._fernet.decrypt(sealed))
        except InvalidToken as exc:
            raise SealError("the held request cannot be decrypted with this key") from exc
