"""medmodels.share: signed, expiring, revocable links to one logged prediction, on a real
DuckDB history database in a temporary home folder."""

from __future__ import annotations

import stat
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from medmodels import MedModelsError, load_settings
from medmodels.history.db import open_database
from medmodels.share import DEFAULT_DAYS, Share, ShareLinkError, ShareLinks, share_secret

T0 = datetime(2026, 3, 1, 12, 0, 0)


def tamper(token: str, at: int = 1) -> str:
    """``token`` with one character changed where every bit counts (not the last one of a
    base64 group, whose low bits may be padding)."""
    i = at % len(token)
    new = "B" if token[i] != "B" else "C"
    return token[:i] + new + token[i + 1 :]


@pytest.fixture
def links(tmp_path: Path):
    settings = load_settings(home=tmp_path / "home")
    db = open_database(settings)
    try:
        yield ShareLinks.for_settings(db, settings)
    finally:
        db.close()


def test_a_new_link_resolves_to_its_prediction(links: ShareLinks) -> None:
    pid = str(uuid.uuid4())
    share, token = links.create(pid, card_markdown="# Card", now=T0)
    assert share.expires_at == T0 + timedelta(days=DEFAULT_DAYS)
    got = links.resolve(token, now=T0 + timedelta(days=1))
    assert got == Share(share.id, pid, T0, share.expires_at, None, "# Card")
    assert share.id not in token.split(".")[-1]  # the signature is not the id
    assert links.list(pid) == [got]


def test_expired_revoked_tampered_and_unknown_links_say_so_and_nothing_else(
    links: ShareLinks, tmp_path: Path
) -> None:
    pid = str(uuid.uuid4())
    _, token = links.create(pid, days=2, now=T0)
    with pytest.raises(ShareLinkError) as exc:
        links.resolve(token, now=T0 + timedelta(days=2))
    assert exc.value.reason == "expired"
    assert "expired" in str(exc.value)

    share, token = links.create(pid, now=T0)
    assert links.revoke(share.id, now=T0)
    assert not links.revoke(share.id)  # already revoked
    with pytest.raises(ShareLinkError) as exc:
        links.resolve(token, now=T0)
    assert exc.value.reason == "revoked"

    _, token = links.create(pid, now=T0)
    for bad in (tamper(token), tamper(token, at=-4), token[:-3], "x" + token, "", "not-a-token"):
        with pytest.raises(ShareLinkError) as exc:
            links.resolve(bad, now=T0)
        assert exc.value.reason == "tampered"

    orphan = links.token("no-such-share-id")
    with pytest.raises(ShareLinkError) as exc:
        links.resolve(orphan, now=T0)
    assert exc.value.reason == "unknown"
    for reason in ("expired", "revoked", "tampered", "unknown"):
        err = ShareLinkError(reason)  # type: ignore[arg-type]
        assert isinstance(err, MedModelsError)
        assert pid not in str(err)


def test_a_link_from_another_server_is_not_accepted(links: ShareLinks, tmp_path: Path) -> None:
    _, token = links.create(str(uuid.uuid4()))
    other = ShareLinks(links.db, b"another server's secret, 32 bytes")
    with pytest.raises(ShareLinkError) as exc:
        other.resolve(token)
    assert exc.value.reason == "tampered"


def test_revoke_accepts_a_token_and_status_prefers_revoked(links: ShareLinks) -> None:
    share, token = links.create(str(uuid.uuid4()), days=1, now=T0)
    assert links.revoke(token, now=T0)
    row = links.get(share.id)
    assert row is not None
    assert row.status(T0 + timedelta(days=5)) == "revoked"
    fresh, _ = links.create(str(uuid.uuid4()), days=1, now=T0)
    assert fresh.status(T0) == "active"
    assert fresh.status((T0 + timedelta(days=1)).replace(tzinfo=UTC)) == "expired"


def test_links_survive_reopening_the_database(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    db = open_database(settings)
    _, token = ShareLinks.for_settings(db, settings).create(str(uuid.uuid4()))
    db.close()
    db = open_database(settings)
    try:
        assert ShareLinks.for_settings(db, settings).resolve(token)
    finally:
        db.close()


def test_the_generated_secret_is_private_to_its_owner(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    secret = share_secret(settings)
    assert len(secret) >= 32
    files = list((tmp_path / "home").rglob("share-links*"))
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert share_secret(settings) == secret


def test_bad_arguments_are_refused(links: ShareLinks) -> None:
    with pytest.raises(ValueError, match="more than 0 days"):
        links.create(str(uuid.uuid4()), days=0)
    with pytest.raises(ValueError):
        links.create("not-a-uuid")
    with pytest.raises(ValueError, match="16 bytes"):
        ShareLinks(links.db, b"short")


def test_the_shares_migration_number_is_free_and_registering_it_later_is_harmless(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medmodels.history import db as history_db
    from medmodels.share import SHARES_MIGRATION

    numbers = [m.number for m in history_db.MIGRATIONS]
    assert SHARES_MIGRATION in history_db.MIGRATIONS or SHARES_MIGRATION.number > max(numbers)
    settings = load_settings(home=tmp_path / "home")
    db = open_database(settings)
    share, token = ShareLinks.for_settings(db, settings).create(str(uuid.uuid4()))
    db.close()
    # The history registers the migration: an existing database upgrades, links still work.
    monkeypatch.setattr(
        history_db, "MIGRATIONS", (*history_db.MIGRATIONS, SHARES_MIGRATION), raising=True
    )
    monkeypatch.setattr(history_db, "SCHEMA_VERSION", SHARES_MIGRATION.number)
    db = open_database(settings)
    try:
        assert db.schema_version() == SHARES_MIGRATION.number
        assert ShareLinks.for_settings(db, settings).resolve(token).id == share.id
    finally:
        db.close()
