"""The model store: immutable version folders, movable aliases with an audit log, publishing
behind admission checks, and SHA-256 verification on every load.

Layout::

    <store>/<name>/<version>/model.onnx       the graph (external-data files sit beside it)
    <store>/<name>/<version>/manifest.json    card, I/O spec and the SHA-256 of every other file
    <store>/<name>/<version>/README.md        the card for humans
    <store>/<name>/aliases.json               {"production": "1.1.0", ...}
    <store>/<name>/alias_log.jsonl            one JSON line per alias move (append-only)

Decisions:

* A version folder holds exactly ``manifest.json`` plus the files its manifest lists. An
  unlisted file, a symlink or any other non-regular file makes the version refused: onnxruntime
  could read an unlisted file as external data without it ever being verified.
* ``manifest.json`` cannot hash itself; :attr:`ModelVersion.manifest_sha256` (the hash of its
  bytes) is what prediction records should keep to pin the exact contract used.
* Verified hashes are cached per file keyed by (path, inode, size, mtime, ctime), so repeated
  :meth:`ModelStore.get` calls only ``stat`` the files; :meth:`ModelStore.verify` always re-reads.
* Published files are made read-only; folders whose names start with ``.`` (such as the
  ``.publish-*`` temp folders of an interrupted publish) are ignored.
* Alias moves are serialised per model with a file lock; the log line is written before
  ``aliases.json`` is replaced, so no move goes unrecorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from medmodels.errors import (
    AdmissionError,
    AliasError,
    IntegrityError,
    ManifestError,
    ModelNotFoundError,
    VersionExistsError,
)
from medmodels.store.admission import AdmissionReport, check_admission
from medmodels.store.card import render_card
from medmodels.store.manifest import (
    MANIFEST_FILE,
    MODEL_FILE,
    README_FILE,
    Manifest,
    SemVer,
    atomic_write_text,
    is_model_name,
    is_version,
    sort_versions,
)

if sys.platform == "win32":  # pragma: no cover - the store is served from Linux/macOS

    def _lock(fd: int) -> None:
        pass

    def _unlock(fd: int) -> None:
        pass

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


ALIASES_FILE = "aliases.json"
# SHA-256 of each version's manifest.json, kept beside the version folders: a manifest cannot
# list its own hash, and a changed byte in it (a window centre, a label) changes the contract.
MANIFEST_HASHES_FILE = "manifests.json"
ALIAS_LOG_FILE = "alias_log.jsonl"
DEFAULT_ALIAS = "production"

_ALIAS_RE = re.compile(r"[a-z][a-z0-9-]{0,63}")
_VERSIONISH_RE = re.compile(r"v\d.*")


def is_alias_name(text: str) -> bool:
    """Whether ``text`` may name an alias: lowercase letters, digits and dashes, starting with a
    letter, at most 64 characters, and not looking like a version (``v2``)."""
    return (
        isinstance(text, str)
        and _ALIAS_RE.fullmatch(text) is not None
        and not _VERSIONISH_RE.fullmatch(text)
    )


def sha256_file(path: Path) -> str:
    """SHA-256 hex of a file, read in chunks (files may be hundreds of MB)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


# --------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class ModelVersion:
    """One verified, published model version, ready to hand to inference."""

    name: str
    version: str
    folder: Path
    manifest: Manifest
    model_path: Path
    model_sha256: str
    manifest_sha256: str
    admission: AdmissionReport | None = None

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @property
    def readme_path(self) -> Path:
        """The human model card."""
        return self.folder / README_FILE


FileStatus = Literal["ok", "changed", "missing", "unlisted", "not-regular"]


@dataclass(frozen=True)
class FileCheck:
    """The integrity of one file of a version folder."""

    name: str
    status: FileStatus
    expected: str | None = None
    actual: str | None = None

    def describe(self) -> str:
        """One phrase for an error message."""
        if self.status == "changed":
            return (
                f"{self.name} has changed (its SHA-256 is {str(self.actual)[:12]}…, "
                f"manifest.json says {str(self.expected)[:12]}…)"
            )
        if self.status == "missing":
            return f"{self.name} is missing"
        if self.status == "unlisted":
            return f"{self.name} is not listed in manifest.json"
        if self.status == "not-regular":
            return f"{self.name} is a symlink or special file, not a regular file"
        return f"{self.name} is intact"


@dataclass(frozen=True)
class IntegrityReport:
    """Result of checking a version folder against the hashes in its manifest."""

    ref: str
    folder: Path
    files: tuple[FileCheck, ...]
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether every file matches and nothing else is in the folder."""
        return not self.problems and all(f.status == "ok" for f in self.files)

    def message(self) -> str:
        """What is wrong and what to do about it."""
        if self.ok:
            return f"{self.ref}: all {len(self.files)} files match manifest.json."
        found = [*self.problems, *(f.describe() for f in self.files if f.status != "ok")]
        return (
            f"{self.ref} is refused because its folder changed after publishing: "
            + "; ".join(found)
            + ". Restore the folder from a backup (or remove files that do not belong to it), "
            "or publish the model again as a new version."
        )


@dataclass(frozen=True)
class AliasEvent:
    """One alias move: at ``time`` (UTC) ``alias`` went from one version to another.

    ``from_version`` is None when the alias was created, ``to_version`` None when removed."""

    time: datetime
    alias: str
    from_version: str | None
    to_version: str | None
    reason: str | None = None
    actor: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The log line's fields."""
        return {
            "time": self.time.isoformat(),
            "alias": self.alias,
            "from": self.from_version,
            "to": self.to_version,
            "reason": self.reason,
            "actor": self.actor,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AliasEvent:
        """Parse one log line's fields."""
        when = datetime.fromisoformat(data["time"])
        return cls(
            time=when if when.tzinfo else when.replace(tzinfo=UTC),
            alias=str(data["alias"]),
            from_version=data.get("from"),
            to_version=data.get("to"),
            reason=data.get("reason"),
            actor=data.get("actor"),
        )


# --------------------------------------------------------------------------------------------
# The store


def _walk(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """Regular files under ``folder`` (relative POSIX name → path) and everything else."""
    regular: dict[str, Path] = {}
    odd: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        base = Path(dirpath)
        for dirname in list(dirnames):
            if (base / dirname).is_symlink():
                odd.append((base / dirname).relative_to(folder).as_posix())
                dirnames.remove(dirname)
        for filename in filenames:
            path = base / filename
            rel = path.relative_to(folder).as_posix()
            if stat.S_ISREG(os.lstat(path).st_mode):
                regular[rel] = path
            else:
                odd.append(rel)
    return regular, sorted(odd)


def _utc(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class ModelStore:
    """A folder of models, their versions and aliases (see the module docstring for the layout).

    Safe to share between threads; alias moves are also safe between processes.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.root = Path(path)
        self._hashes: dict[tuple[str, int, int, int, int], str] = {}
        self._cache_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ModelStore({str(self.root)!r})"

    # -- listing -------------------------------------------------------------------------

    def models(self) -> list[str]:
        """Names of the models that have at least one version, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if entry.is_dir() and is_model_name(entry.name) and self._version_dirs(entry)
        )

    @staticmethod
    def _version_dirs(model_dir: Path) -> list[str]:
        return [
            entry.name
            for entry in model_dir.iterdir()
            if entry.is_dir() and not entry.is_symlink() and is_version(entry.name)
        ]

    def _no_model(self, ref: str) -> ModelNotFoundError:
        models = self.models()
        available = ", ".join(models) if models else f"none (the store at {self.root} is empty)"
        return ModelNotFoundError(f"{ref}: no such model; available: {available}")

    def versions(self, name: str) -> list[str]:
        """Versions of ``name``, newest first by SemVer."""
        model_dir = self.root / name
        if not is_model_name(name) or not model_dir.is_dir():
            raise self._no_model(name)
        found = self._version_dirs(model_dir)
        if not found:
            raise self._no_model(name)
        return sort_versions(found)

    def aliases(self, name: str) -> dict[str, str]:
        """Alias → version for ``name`` (empty when none is set)."""
        self.versions(name)
        return self._read_aliases(name)

    def _choices(self, name: str) -> str:
        ascending = list(reversed(self.versions(name)))
        aliases = sorted(self._read_aliases(name))
        return f"available: {', '.join(ascending)}; " + (
            f"aliases: {', '.join(aliases)}" if aliases else "no aliases"
        )

    def resolve(self, ref: str) -> tuple[str, str]:
        """``(name, version)`` for ``name@version``, ``name@alias`` or bare ``name`` (its
        ``production`` alias, else its newest version). Nothing is read but folder names and
        aliases.json."""
        name, sep, tag = ref.partition("@")
        if not is_model_name(name) or not (self.root / name).is_dir():
            raise self._no_model(ref)
        versions = self.versions(name)
        aliases = self._read_aliases(name)
        if not sep:
            if DEFAULT_ALIAS not in aliases:
                return name, versions[0]
            tag = DEFAULT_ALIAS
        if is_version(tag):
            if tag in versions:
                return name, tag
        elif tag in aliases:
            target = aliases[tag]
            if target not in versions:
                raise ModelNotFoundError(
                    f"{name}@{tag} points to {target}, which is not in the store; "
                    f"move the alias to an existing version ({self._choices(name)})"
                )
            return name, target
        raise ModelNotFoundError(f"{name}@{tag}; {self._choices(name)}")

    # -- loading and integrity -------------------------------------------------------------

    def _hash(self, path: Path, *, use_cache: bool) -> str:
        def key() -> tuple[str, int, int, int, int]:
            st = path.stat()
            return (str(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

        before = key()
        if use_cache:
            with self._cache_lock:
                cached = self._hashes.get(before)
            if cached is not None:
                return cached
        digest = sha256_file(path)
        if key() == before:  # only cache a hash of a file that did not change while read
            with self._cache_lock:
                self._hashes[before] = digest
        return digest

    def _inspect(
        self, name: str, version: str, *, use_cache: bool
    ) -> tuple[Manifest, str, IntegrityReport, dict[str, str]]:
        folder = self.root / name / version
        manifest_path = folder / MANIFEST_FILE
        try:
            raw = manifest_path.read_bytes()
        except FileNotFoundError:
            raise ManifestError(
                f"{name}/{version}/{MANIFEST_FILE}: not found; the version folder is "
                "incomplete. Restore it from a backup or publish the model again."
            ) from None
        manifest = Manifest.from_json(raw, source=f"{name}/{version}/{MANIFEST_FILE}")
        manifest_sha = hashlib.sha256(raw).hexdigest()

        problems: list[str] = []
        recorded = self._read_manifest_hashes(name).get(version)
        manifest_check: list[FileCheck] = []
        if recorded is None:
            problems.append(
                f"manifest.json has no recorded SHA-256 in {name}/{MANIFEST_HASHES_FILE}, so "
                "its contract cannot be trusted; publish the model again as a new version"
            )
        else:
            manifest_check.append(
                FileCheck(
                    MANIFEST_FILE,
                    "ok" if recorded == manifest_sha else "changed",
                    recorded,
                    manifest_sha,
                )
            )
        if (manifest.name, manifest.version) != (name, version):
            problems.append(f"manifest.json describes {manifest.ref} but sits in {name}/{version}")
        regular, odd = _walk(folder)
        regular.pop(MANIFEST_FILE, None)
        expected = dict(manifest.files)
        if MODEL_FILE not in expected:
            problems.append("manifest.json lists no SHA-256 for model.onnx")
        checks: list[FileCheck] = list(manifest_check)
        actual: dict[str, str] = {}
        for rel, digest in expected.items():
            if rel in odd:
                checks.append(FileCheck(rel, "not-regular", digest))
            elif rel not in regular:
                checks.append(FileCheck(rel, "missing", digest))
            else:
                found = self._hash(regular[rel], use_cache=use_cache)
                actual[rel] = found
                checks.append(FileCheck(rel, "ok" if found == digest else "changed", digest, found))
        checks += [FileCheck(rel, "unlisted") for rel in sorted(set(regular) - set(expected))]
        checks += [FileCheck(rel, "not-regular") for rel in odd if rel not in expected]
        report = IntegrityReport(f"{name}@{version}", folder, tuple(checks), tuple(problems))
        return manifest, manifest_sha, report, actual

    def get(self, ref: str) -> ModelVersion:
        """Resolve ``ref`` and load that version, verifying every file's SHA-256.

        Raises ModelNotFoundError (listing the choices), ManifestError or IntegrityError."""
        name, version = self.resolve(ref)
        manifest, manifest_sha, report, actual = self._inspect(name, version, use_cache=True)
        if not report.ok:
            raise IntegrityError(report.message())
        folder = self.root / name / version
        return ModelVersion(
            name=name,
            version=version,
            folder=folder,
            manifest=manifest,
            model_path=folder / MODEL_FILE,
            model_sha256=actual[MODEL_FILE],
            manifest_sha256=manifest_sha,
        )

    def verify(self, ref: str) -> IntegrityReport:
        """Re-hash every file of ``ref`` (no cache) and report; does not raise on mismatches."""
        name, version = self.resolve(ref)
        return self._inspect(name, version, use_cache=False)[2]

    # -- publishing ----------------------------------------------------------------------

    def check(
        self, onnx_path: str | os.PathLike[str], manifest: Manifest, *, threads: int = 1
    ) -> AdmissionReport:
        """Run the admission checks without publishing (for a UI to show before publishing)."""
        return check_admission(onnx_path, manifest, store=self, threads=threads)

    def publish(
        self,
        onnx_path: str | os.PathLike[str],
        manifest: Manifest,
        *,
        readme: str | None = None,
        threads: int = 1,
    ) -> ModelVersion:
        """Admit and publish ``onnx_path`` as ``manifest.name``/``manifest.version``.

        ``readme`` is Markdown text; by default the card is rendered from the manifest.
        ``manifest.files`` is computed here (any given value is replaced). The returned
        version carries the :class:`AdmissionReport` in ``.admission``. Raises
        VersionExistsError if the version exists and AdmissionError listing every failed
        check (each with what to fix)."""
        source = Path(onnx_path)
        ref = manifest.ref
        final = self.root / manifest.name / manifest.version
        if final.exists():
            raise self._exists(manifest)
        report = check_admission(source, manifest, store=self, threads=threads)
        if not report.ok:
            raise AdmissionError(report.summary())

        model_dir = final.parent
        model_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".publish-", dir=model_dir))
        try:
            shutil.copyfile(source, tmp / MODEL_FILE)
            for rel in report.external_files:
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source.parent / rel, tmp / rel)
            files = {rel: sha256_file(tmp / rel) for rel in (MODEL_FILE, *report.external_files)}
            text = readme if readme is not None else render_card(manifest.with_files(files))
            (tmp / README_FILE).write_text(text, encoding="utf-8")
            files[README_FILE] = sha256_file(tmp / README_FILE)
            final_manifest = manifest.with_files(files)
            final_manifest.dump(tmp / MANIFEST_FILE)
            for path in tmp.rglob("*"):
                if path.is_file():
                    with path.open("rb") as handle:
                        os.fsync(handle.fileno())
                    path.chmod(0o444)
            tmp.chmod(0o755)  # mkdtemp makes 0700; the app may run as another user
            with self._locked(manifest.name):
                try:
                    os.rename(tmp, final)
                except OSError:
                    if final.exists():
                        raise self._exists(manifest) from None
                    raise
                hashes = self._read_manifest_hashes(manifest.name)
                hashes[manifest.version] = sha256_file(final / MANIFEST_FILE)
                atomic_write_text(
                    self.root / manifest.name / MANIFEST_HASHES_FILE,
                    json.dumps(dict(sorted(hashes.items())), indent=2) + "\n",
                )
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return replace(self.get(ref), admission=report)

    def _exists(self, manifest: Manifest) -> VersionExistsError:
        v = SemVer.parse(manifest.version)
        bumped = f"{v.major}.{v.minor}.{v.patch + 1}"
        return VersionExistsError(
            f"{manifest.ref} is already published and version folders are immutable; give the "
            f"new model another version (e.g. {bumped}) and publish again"
        )

    # -- aliases -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        with open(self.root / name / ".aliases.lock", "a+b") as handle:
            _lock(handle.fileno())
            try:
                yield
            finally:
                _unlock(handle.fileno())

    def _read_manifest_hashes(self, name: str) -> dict[str, str]:
        path = self.root / name / MANIFEST_HASHES_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise IntegrityError(
                f"{name}/{MANIFEST_HASHES_FILE} cannot be read ({exc}); restore it from a backup"
            ) from None
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise IntegrityError(
                f"{name}/{MANIFEST_HASHES_FILE} must map versions to SHA-256 digests; restore it "
                "from a backup"
            )
        return data

    def _read_aliases(self, name: str) -> dict[str, str]:
        path = self.root / name / ALIASES_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ManifestError(
                f"{name}/{ALIASES_FILE} cannot be read ({exc}); restore it, or rebuild it "
                f"from {ALIAS_LOG_FILE}"
            ) from None
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise ManifestError(
                f"{name}/{ALIASES_FILE} must map alias names to version strings; restore it, "
                f"or rebuild it from {ALIAS_LOG_FILE}"
            )
        return data

    def _check_alias_name(self, alias: str) -> None:
        if not is_alias_name(alias):
            raise AliasError(
                f"{alias!r} cannot name an alias: use 1-64 lowercase letters, digits or "
                "dashes, starting with a letter and not looking like a version (e.g. "
                "'production', 'staging', 'ward-trial')"
            )

    def _move(
        self, name: str, alias: str, to: str | None, reason: str | None, actor: str | None
    ) -> AliasEvent | None:
        """Move ``alias`` (caller holds the lock): log line first, then aliases.json."""
        aliases = self._read_aliases(name)
        old = aliases.get(alias)
        if old == to:
            return None
        event = AliasEvent(datetime.now(UTC), alias, old, to, reason, actor)
        log = self.root / name / ALIAS_LOG_FILE
        with log.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(event.to_json(), ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if to is None:
            del aliases[alias]
        else:
            aliases[alias] = to
        atomic_write_text(
            self.root / name / ALIASES_FILE,
            json.dumps(dict(sorted(aliases.items())), indent=2) + "\n",
        )
        return event

    def set_alias(
        self,
        name: str,
        alias: str,
        version: str,
        *,
        reason: str | None = None,
        actor: str | None = None,
    ) -> AliasEvent | None:
        """Point ``alias`` at ``version`` (which must exist and pass verification) and record
        the move; returns the event, or None when the alias already pointed there."""
        self._check_alias_name(alias)
        if not is_version(version) or version not in self.versions(name):
            raise ModelNotFoundError(f"{name}@{version}; {self._choices(name)}")
        self.get(f"{name}@{version}")  # never point an alias at a damaged version
        with self._locked(name):
            return self._move(name, alias, version, reason, actor)

    def remove_alias(
        self, name: str, alias: str, *, reason: str | None = None, actor: str | None = None
    ) -> AliasEvent:
        """Delete ``alias`` and record it."""
        self.versions(name)
        with self._locked(name):
            if alias not in self.aliases(name):
                raise ModelNotFoundError(f"{name}@{alias}; {self._choices(name)}")
            event = self._move(name, alias, None, reason, actor)
        assert event is not None
        return event

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Every recorded alias move of ``name`` (only ``alias``'s if given), oldest first."""
        self.versions(name)
        path = self.root / name / ALIAS_LOG_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        events: list[AliasEvent] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                event = AliasEvent.from_json(json.loads(line))
            except (ValueError, KeyError, TypeError, AttributeError):
                raise ManifestError(
                    f"{name}/{ALIAS_LOG_FILE} line {number} is not a valid alias event; the "
                    "log is append-only, restore it from a backup"
                ) from None
            if alias is None or event.alias == alias:
                events.append(event)
        return events

    def alias_at(self, name: str, alias: str, when: datetime) -> str | None:
        """The version ``alias`` pointed to at ``when`` (naive times are taken as UTC), or None
        if it did not exist then."""
        moment = _utc(when)
        current: str | None = None
        for event in self.alias_history(name, alias):
            if event.time > moment:
                break
            current = event.to_version
        return current

    def rollback(
        self, name: str, alias: str, *, reason: str, actor: str | None = None
    ) -> AliasEvent:
        """Move ``alias`` back to where it pointed before its last move (recorded as a move)."""
        self.versions(name)
        with self._locked(name):
            history = self.alias_history(name, alias)
            if not history:
                raise AliasError(
                    f"{name}@{alias} has never been set, so there is nothing to roll back; "
                    f"{self._choices(name)}"
                )
            last = history[-1]
            target = last.from_version
            if target is None:
                raise AliasError(
                    f"{name}@{alias} was created by its last move (to {last.to_version} at "
                    f"{last.time.isoformat()}), so it has no earlier version to go back to; "
                    "use remove_alias to delete it"
                )
            if target not in self.versions(name):
                raise AliasError(
                    f"{name}@{alias} used to point to {target}, which is no longer in the "
                    f"store; set the alias explicitly ({self._choices(name)})"
                )
            self.get(f"{name}@{target}")
            event = self._move(name, alias, target, reason, actor)
        assert event is not None  # target differs from the current version by construction
        return event


def publish(
    onnx_path: str | os.PathLike[str],
    manifest: Manifest,
    store: ModelStore | str | os.PathLike[str],
    *,
    readme: str | None = None,
    threads: int = 1,
) -> ModelVersion:
    """Publish into ``store`` (a :class:`ModelStore` or its folder); see
    :meth:`ModelStore.publish`."""
    target = store if isinstance(store, ModelStore) else ModelStore(store)
    return target.publish(onnx_path, manifest, readme=readme, threads=threads)


# --------------------------------------------------------------------------------------------
# Diff


@dataclass(frozen=True)
class FieldChange:
    """A manifest field that differs; ``path`` is dotted (``input.preprocessing[0].width``);
    ``old`` or ``new`` is None when the field exists on one side only."""

    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class FileChange:
    """A file whose hash differs; ``old``/``new`` is None when the file is added/removed."""

    name: str
    old: str | None
    new: str | None


@dataclass(frozen=True)
class MetricChange:
    """A metric (by name and dataset) that changed, appeared or disappeared."""

    name: str
    dataset: str
    old: float | None
    new: float | None

    @property
    def delta(self) -> float | None:
        """``new - old`` when both exist."""
        if self.old is None or self.new is None:
            return None
        return self.new - self.old


@dataclass(frozen=True)
class VersionDiff:
    """What changed from version ``old`` to version ``new``."""

    old: str
    new: str
    fields: tuple[FieldChange, ...]
    files: tuple[FileChange, ...]
    metrics: tuple[MetricChange, ...]

    @property
    def empty(self) -> bool:
        """True when the two manifests are identical."""
        return not (self.fields or self.files or self.metrics)


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and value:
        for i, item in enumerate(value):
            _flatten(item, f"{prefix}[{i}]", out)
    else:
        out[prefix] = value


def diff_manifests(a: Manifest, b: Manifest) -> VersionDiff:
    """Structured differences between two manifests (metrics and files reported apart)."""
    da, db = a.to_data(), b.to_data()
    for data in (da, db):
        data.pop("files", None)
        data["card"].pop("metrics", None)
    flat_a: dict[str, Any] = {}
    flat_b: dict[str, Any] = {}
    _flatten(da, "", flat_a)
    _flatten(db, "", flat_b)
    paths = list(flat_a) + [p for p in flat_b if p not in flat_a]
    fields = tuple(
        FieldChange(p, flat_a.get(p), flat_b.get(p))
        for p in paths
        if flat_a.get(p) != flat_b.get(p) or (p in flat_a) != (p in flat_b)
    )
    names = list(a.files) + [n for n in b.files if n not in a.files]
    files = tuple(
        FileChange(n, a.files.get(n), b.files.get(n))
        for n in sorted(names)
        if a.files.get(n) != b.files.get(n)
    )
    old_metrics = {(m.name, m.dataset): m.value for m in a.card.metrics}
    new_metrics = {(m.name, m.dataset): m.value for m in b.card.metrics}
    keys = list(old_metrics) + [k for k in new_metrics if k not in old_metrics]
    metrics = tuple(
        MetricChange(k[0], k[1], old_metrics.get(k), new_metrics.get(k))
        for k in keys
        if old_metrics.get(k) != new_metrics.get(k)
    )
    return VersionDiff(a.ref, b.ref, fields, files, metrics)


def diff(a: ModelVersion, b: ModelVersion) -> VersionDiff:
    """What changed from version ``a`` to version ``b``: manifest fields, file hashes and
    metrics (with deltas)."""
    return diff_manifests(a.manifest, b.manifest)
