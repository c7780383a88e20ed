"""Read untrusted uploads in a separate process with memory and time limits.

Native codecs (JPEG, JPEG 2000, JPEG-LS, RLE) parse bytes a stranger sent. A codec that
crashes, hangs or allocates without bound must cost one worker process, not the app: the
:class:`DecodePool` runs :func:`~medmodels.scans.load.load_scans` in a child process whose
address space is capped (``MEDMODELS_DECODE_MEMORY_MB``) and whose call is abandoned after
``MEDMODELS_DECODE_TIMEOUT_S``. A dead or stuck worker is replaced and the caller gets
:class:`~medmodels.errors.UnreadableScanError` saying what happened; the next upload works.

Workers are started by a fork server (never a fork of the possibly multi-threaded app) and
kept warm, so the price per upload is moving the bytes in and the arrays out once.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeVar

from medmodels.config import Settings, load_settings
from medmodels.errors import FileProblem, UnreadableScanError
from medmodels.scans.load import Upload, load_scans
from medmodels.scans.types import LoadResult

T = TypeVar("T")


def _limit_worker(address_space_bytes: int) -> None:
    """Worker initializer: cap the address space so a bomb fails with MemoryError here."""
    import resource

    if address_space_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (address_space_bytes, address_space_bytes))


def _load_in_worker(inputs: list[Any], settings_data: dict[str, Any]) -> LoadResult:
    return load_scans(inputs, settings=Settings(**settings_data))


def portable_inputs(inputs: Upload | Iterable[Upload]) -> list[Any]:
    """Inputs as things that cross a process boundary: paths stay paths (the worker reads them),
    uploaded file objects become ``(name, bytes)``."""
    items: list[Any] = (
        [inputs]
        if isinstance(inputs, str | bytes | os.PathLike | tuple) or hasattr(inputs, "read")
        else list(inputs)
    )
    out: list[Any] = []
    for item in items:
        if isinstance(item, str | os.PathLike):
            out.append(str(Path(item)))
        elif isinstance(item, bytes | tuple):
            out.append(item)
        else:
            name = str(getattr(item, "name", "upload"))
            getvalue = getattr(item, "getvalue", None)
            data = getvalue() if callable(getvalue) else item.read()
            out.append((name, bytes(data)))
    return out


class DecodePool:
    """A small pool of limited worker processes for reading uploads (see module docstring)."""

    def __init__(self, settings: Settings | None = None, *, workers: int | None = None) -> None:
        self.settings = settings or load_settings()
        self.workers = workers or self.settings.decode_workers
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=multiprocessing.get_context("forkserver"),
                    initializer=_limit_worker,
                    initargs=(self.settings.decode_memory_mb * 1024 * 1024,),
                )
            return self._executor

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """Kill every worker of ``broken`` and start afresh on the next call."""
        with self._lock:
            if self._executor is broken:
                self._executor = None
        for process in list(getattr(broken, "_processes", {}).values()):
            with contextlib.suppress(Exception):  # already gone
                process.kill()
        broken.shutdown(wait=False, cancel_futures=True)

    def call(self, fn: Callable[..., T], *args: Any, label: str = "upload") -> T:
        """Run ``fn(*args)`` in a worker under the limits; translate a dead or stuck worker
        into :class:`UnreadableScanError` (code ``decoder-crashed`` or ``decoder-timeout``)."""
        pool = self._pool()
        timeout = self.settings.decode_timeout_s
        try:
            future = pool.submit(fn, *args)
            return future.result(timeout=timeout)
        except FutureTimeout:
            self._replace(pool)
            reason = (
                f"Reading the upload took longer than {timeout:g} s and was stopped; the file "
                "may be damaged or built to stall a decoder (MEDMODELS_DECODE_TIMEOUT_S)."
            )
            raise UnreadableScanError(
                reason, [FileProblem(label, reason, "decoder-timeout")], code="decoder-timeout"
            ) from None
        except BrokenProcessPool:
            self._replace(pool)
            reason = (
                "The decoder stopped abruptly while reading the upload (it crashed or needed "
                f"more than {self.settings.decode_memory_mb} MiB, MEDMODELS_DECODE_MEMORY_MB); "
                "the file may be damaged or malicious."
            )
            raise UnreadableScanError(
                reason, [FileProblem(label, reason, "decoder-crashed")], code="decoder-crashed"
            ) from None

    def load(self, inputs: Upload | Iterable[Upload]) -> LoadResult:
        """:func:`load_scans` in a worker. A crash or timeout becomes a LoadResult problem."""
        items = portable_inputs(inputs)
        try:
            return self.call(_load_in_worker, items, self.settings.model_dump(mode="json"))
        except UnreadableScanError as exc:
            return LoadResult(problems=list(exc.problems))

    def close(self) -> None:
        """Stop the workers."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


_DEFAULT: DecodePool | None = None
_DEFAULT_LOCK = threading.Lock()


def load_scans_isolated(
    inputs: Upload | Iterable[Upload], *, settings: Settings | None = None
) -> LoadResult:
    """Like :func:`load_scans`, but in a limited worker process (what the app uses)."""
    global _DEFAULT
    settings = settings or load_settings()
    with _DEFAULT_LOCK:
        if _DEFAULT is None or _DEFAULT.settings != settings:
            if _DEFAULT is not None:
                _DEFAULT.close()
            _DEFAULT = DecodePool(settings)
        pool = _DEFAULT
    return pool.load(inputs)
