"""Share links: a signed, expiring, revocable, read-only link to one logged prediction.

A link carries ``?share=<token>``. The token is a random share id signed with a server secret
(:class:`itsdangerous.URLSafeSerializer`), so a changed character is detected before the
database is asked. The id names a row of the ``shares`` table in the history database that holds
the prediction id, the expiry and the revoked flag, plus a snapshot of the model card taken when
the link was made: expiry and revocation are decided by the row, never by the token, so a link
can be revoked at any time and an expiry cannot be extended by editing the URL.

Resolving a token fails with :class:`ShareLinkError` whose ``reason`` is ``tampered``,
``unknown``, ``expired`` or ``revoked``, and whose message says only that — never which
prediction or model the link was for.

The secret is ``Settings.share_secret`` when that setting exists and is set, else the home
folder's generated ``share-links`` secret (``<home>/secrets/share-links.key``, mode 0600).
"""

from __future__ import annotations

import secrets as _secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from itsdangerous import BadData, URLSafeSerializer

from medmodels.config import Settings
from medmodels.errors import MedModelsError
from medmodels.history.db import MIGRATIONS, Database, Migration
from medmodels.history.secrets import home_secret

DEFAULT_DAYS = 7
SECRET_NAME = "share-links"
_SALT = "medmodels.share.v1"

ShareStatus = Literal["active", "expired", "revoked"]
FailReason = Literal["tampered", "unknown", "expired", "revoked"]

_MESSAGES: dict[str, str] = {
    "tampered": "This share link is not valid: it was changed or cut short, or it was made by "
    "another MedModels server. Ask the sender for the link again.",
    "unknown": "This share link does not exist here (it may have been deleted with its "
    "prediction). Ask the sender for a new link.",
    "expired": "This share link has expired. Ask the sender for a new link.",
    "revoked": "This share link was revoked by its owner. Ask the sender for a new link.",
}

SHARES_MIGRATION: Migration = next(m for m in MIGRATIONS if m.name == "share links")
"""The history migration (number 3) that creates the ``shares`` table."""

SHARES_TABLE = SHARES_MIGRATION.statements[0]
"""The ``shares`` table (timestamps are naive UTC, as in the rest of the history database)."""


class ShareLinkError(MedModelsError, LookupError):
    """A share link cannot be opened; ``reason`` says why (tampered/unknown/expired/revoked)."""

    def __init__(self, reason: FailReason):
        super().__init__(_MESSAGES[reason])
        self.reason: FailReason = reason


@dataclass(frozen=True)
class Share:
    """One share link's row."""

    id: str
    prediction_id: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    card_markdown: str | None = None

    def status(self, now: datetime | None = None) -> ShareStatus:
        """``revoked`` wins over ``expired``; otherwise ``active``."""
        if self.revoked_at is not None:
            return "revoked"
        if _naive_utc(now or datetime.now(UTC)) >= self.expires_at:
            return "expired"
        return "active"


def _naive_utc(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when


def share_secret(settings: Settings) -> bytes:
    """The signing secret: the ``share_secret`` setting if set, else the home folder's own."""
    configured = getattr(settings, "share_secret", None)
    if configured:
        reveal = getattr(configured, "get_secret_value", None)
        return str(reveal() if callable(reveal) else configured).encode("utf-8")
    return home_secret(settings, SECRET_NAME)


def default_days(settings: Settings) -> float:
    """How long a new link lasts: the ``share_days`` setting if it exists, else 7 days."""
    return float(getattr(settings, "share_days", DEFAULT_DAYS) or DEFAULT_DAYS)


class ShareLinks:
    """Create, resolve, list and revoke share links stored in ``db``."""

    def __init__(self, db: Database, secret: bytes):
        if len(secret) < 16:
            raise ValueError("a share-link secret needs at least 16 bytes")
        self.db = db
        self._serializer = URLSafeSerializer(secret, salt=_SALT)
        if SHARES_MIGRATION not in MIGRATIONS:
            with db.cursor() as cur:
                cur.execute(SHARES_TABLE)

    @classmethod
    def for_settings(cls, db: Database, settings: Settings) -> ShareLinks:
        """Links signed with :func:`share_secret` of ``settings``."""
        return cls(db, share_secret(settings))

    # -- tokens ----------------------------------------------------------------------------

    def token(self, share_id: str) -> str:
        """The URL-safe signed token for a share id."""
        return str(self._serializer.dumps(share_id))

    def _unsign(self, token: str) -> str:
        try:
            value = self._serializer.loads(token)
        except BadData:
            raise ShareLinkError("tampered") from None
        if not isinstance(value, str):
            raise ShareLinkError("tampered")
        return value

    # -- rows ------------------------------------------------------------------------------

    def create(
        self,
        prediction_id: str,
        *,
        days: float = DEFAULT_DAYS,
        card_markdown: str | None = None,
        now: datetime | None = None,
    ) -> tuple[Share, str]:
        """A new link to ``prediction_id`` valid for ``days``; returns the row and its token."""
        if days <= 0:
            raise ValueError("a share link must last more than 0 days")
        created = _naive_utc(now or datetime.now(UTC))
        share = Share(
            id=_secrets.token_urlsafe(16),
            prediction_id=str(uuid.UUID(str(prediction_id))),
            created_at=created,
            expires_at=created + timedelta(days=days),
            card_markdown=card_markdown,
        )
        with self.db.cursor() as cur:
            cur.execute(
                "INSERT INTO shares VALUES (?, ?, ?, ?, NULL, ?)",
                [
                    share.id,
                    share.prediction_id,
                    share.created_at,
                    share.expires_at,
                    card_markdown,
                ],
            )
        return share, self.token(share.id)

    def get(self, share_id: str) -> Share | None:
        """The row of ``share_id``, or None."""
        with self.db.cursor() as cur:
            row = cur.execute(
                "SELECT id, prediction_id::VARCHAR, created_at, expires_at, revoked_at, "
                "card_markdown FROM shares WHERE id = ?",
                [share_id],
            ).fetchone()
        return None if row is None else Share(*row)

    def resolve(self, token: str, *, now: datetime | None = None) -> Share:
        """The active share a token names; raises :class:`ShareLinkError` otherwise."""
        share = self.get(self._unsign(token))
        if share is None:
            raise ShareLinkError("unknown")
        status = share.status(now)
        if status != "active":
            raise ShareLinkError(status)
        return share

    def list(self, prediction_id: str | None = None) -> list[Share]:
        """Shares, newest first (only those of ``prediction_id`` when given)."""
        sql = (
            "SELECT id, prediction_id::VARCHAR, created_at, expires_at, revoked_at, card_markdown "
            "FROM shares"
        )
        params: list[object] = []
        if prediction_id is not None:
            sql += " WHERE prediction_id = ?"
            params.append(str(uuid.UUID(str(prediction_id))))
        with self.db.cursor() as cur:
            rows = cur.execute(sql + " ORDER BY created_at DESC, id", params).fetchall()
        return [Share(*row) for row in rows]

    def revoke(self, share_id: str, *, now: datetime | None = None) -> bool:
        """Revoke a share (by id or token); False when it was already revoked or is unknown."""
        if "." in share_id:
            share_id = self._unsign(share_id)
        when = _naive_utc(now or datetime.now(UTC))
        with self.db.cursor() as cur:
            row = cur.execute(
                "UPDATE shares SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING id",
                [when, share_id],
            ).fetchone()
        return row is not None
