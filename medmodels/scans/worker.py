"""Read untrusted uploads in a separate process with memory and time limits.

Native codecs (JPEG, JPEG 2000, JPEG-LS, RLE) parse bytes a stranger sent. A codec that
crashes, hangs or allocates without bound must cost one worker process, not the app: the
:class:`DecodePool` runs :func:`~medmodels.scans.load.load_scans` in a child process whose
address space is capped (``MEDMODELS_DECODE_MEMORY_MB``) and whose call is abandoned after
``MEDMODELS_DECODE_TIMEOUT_S``. A dead or stuck worker is replaced and the caller gets
:class:`~medmodels.errors.UnreadableScanError` saying what happened; the next upload works.

Workers are plain ``python -m medmodels.scans._worker_main`` processes that talk pickled
frames over a pipe. Unlike :mod:`multiprocessing`, this never re-imports the parent's main
module in the child (for the app that would be the Streamlit page itself), and workers stay warm,
so the price per upload is moving the bytes in and the arrays out once.
"""

from __future__ import annotations

import os
import pickle
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from medmodels.config import Settings, load_settings
from medmodels.errors import FileProblem, UnreadableScanError
from medmodels.scans._frames import HEADER, write_frame
from medmodels.scans.load import Upload, iter_inputs, load_scans
from medmodels.scans.types import LoadResult

T = TypeVar("T")
_STARTUP_TIMEOUT_S = 120.0


class _WorkerDied(Exception):
    pass


class _WorkerTimedOut(Exception):
    pass


class _Worker:
    """One warm worker process."""

    def __init__(self, memory_bytes: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "medmodels.scans._worker_main", str(memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin
        self._out = self.proc.stdout.fileno()
        write_frame(self._in, pickle.dumps(list(sys.path)))
        # Wait until the worker has imported the readers: start-up is not the upload's time.
        ready = self._read_frame(time.monotonic() + _STARTUP_TIMEOUT_S)
        if ready != b"ready":
            raise _WorkerDied

    def _read_frame(self, deadline: float) -> bytes:
        (size,) = HEADER.unpack(self._read_exact(HEADER.size, deadline))
        return self._read_exact(size, deadline)

    def _read_exact(self, size: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        left = size
        while left:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _WorkerTimedOut
            ready, _, _ = select.select([self._out], [], [], remaining)
            if not ready:
                raise _WorkerTimedOut
            chunk = os.read(self._out, min(left, 1 << 20))
            if not chunk:
                raise _WorkerDied
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def call(self, fn: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        try:
            write_frame(self._in, pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL))
        except (BrokenPipeError, OSError):
            raise _WorkerDied from None
        kind, value = pickle.loads(self._read_frame(deadline))
        if kind == "error":
            raise value
        return value

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _load_in_worker(inputs: list[Any], settings_data: dict[str, Any]) -> LoadResult:
    return load_scans(inputs, settings=Settings(**settings_data))


def portable_inputs(inputs: Upload | Iterable[Upload]) -> list[Any]:
    """Inputs as things that cross a process boundary: paths stay paths (the worker reads them),
    uploaded file objects become ``(name, bytes)``."""
    out: list[Any] = []
    for item in iter_inputs(inputs):
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
        self._slots = threading.Semaphore(self.workers)
        self._idle: list[_Worker] = []

    def _take(self) -> _Worker:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return _Worker(self.settings.decode_memory_mb * 1024 * 1024)

    def call(self, fn: Callable[..., T], *args: Any, label: str = "upload") -> T:
        """Run ``fn(*args)`` in a worker under the limits; translate a dead or stuck worker
        into :class:`UnreadableScanError` (code ``decoder-crashed`` or ``decoder-timeout``).
        Exceptions raised by ``fn`` itself are re-raised here unchanged."""
        timeout = self.settings.decode_timeout_s
        with self._slots:
            try:
                worker = self._take()
            except (_WorkerDied, _WorkerTimedOut, OSError):
                reason = "The decode worker could not be started; try again, or check the server."
                raise UnreadableScanError(
                    reason, [FileProblem(label, reason, "decoder-crashed")], code="decoder-crashed"
                ) from None
            try:
                result = worker.call(fn, args, timeout)
            except _WorkerTimedOut:
                worker.kill()
                reason = (
                    f"Reading the upload took longer than {timeout:g} s and was stopped; the "
                    "file may be damaged or built to stall a decoder (MEDMODELS_DECODE_TIMEOUT_S)."
                )
                raise UnreadableScanError(
                    reason, [FileProblem(label, reason, "decoder-timeout")], code="decoder-timeout"
                ) from None
            except _WorkerDied:
                worker.kill()
                reason = (
                    "The decoder stopped abruptly while reading the upload (it crashed or needed "
                    f"more than {self.settings.decode_memory_mb} MiB, "
                    "MEDMODELS_DECODE_MEMORY_MB); the file may be damaged or malicious."
                )
                raise UnreadableScanError(
                    reason, [FileProblem(label, reason, "decoder-crashed")], code="decoder-crashed"
                ) from None
            except BaseException:
                with self._lock:  # fn raised: the worker itself is fine
                    self._idle.append(worker)
                raise
            with self._lock:
                self._idle.append(worker)
            return result

    def load(self, inputs: Upload | Iterable[Upload]) -> LoadResult:
        """:func:`load_scans` in a worker. A crash or timeout becomes a LoadResult problem."""
        items = portable_inputs(inputs)
        try:
            return self.call(_load_in_worker, items, self.settings.model_dump(mode="json"))
        except UnreadableScanError as exc:
            return LoadResult(problems=list(exc.problems))

    def close(self) -> None:
        """Stop the idle workers."""
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.close()


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
