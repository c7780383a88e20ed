"""Local secrets kept in the home folder: random keys for keyed hashes (the history's series hash)
and for signing (share links). Each is created once, readable only by its owner (0600)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import threading
from pathlib import Path

from medmodels.config import Settings
from medmodels.errors import HistoryError

SECRETS_DIR = "secrets"
_NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")
_KEY_BYTES = 32
_cache: dict[tuple[Path, str], bytes] = {}
_cache_lock = threading.Lock()


def home_secret(settings: Settings, name: str) -> bytes:
    """The 32-byte secret ``name`` of this home folder (``<home>/secrets/<name>.key``), generated
    on first use with permissions 0600. Different names give independent keys."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} cannot name a secret: use lowercase letters, digits, dashes")
    folder = Path(settings.home).resolve() / SECRETS_DIR
    key = (folder, name)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        secret = _read_or_create(folder / f"{name}.key")
        _cache[key] = secret
        return secret


def _read_or_create(path: Path) -> bytes:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w", encoding="ascii") as handle:
                    handle.write(secrets.token_hex(_KEY_BYTES) + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, path)  # never replaces a key another process just made
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
        text = path.read_text(encoding="ascii").strip()
        secret = bytes.fromhex(text)
    except (OSError, ValueError) as exc:
        raise HistoryError(
            f"The secret {path} cannot be read or created ({exc}); check that MEDMODELS_HOME is "
            "writable, or delete the damaged file to generate a new one (repeat scans logged "
            "before will no longer be recognised)."
        ) from None
    if len(secret) < 16:
        raise HistoryError(f"The secret {path} is too short; delete it to generate a new one.")
    return secret


def keyed_hash(secret: bytes, value: str) -> str:
    """HMAC-SHA256 of ``value`` under ``secret``, as hex."""
    return hmac.new(secret, value.encode("utf-8"), hashlib.sha256).hexdigest()
