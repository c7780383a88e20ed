"""The decode worker process: ``python -m medmodels.scans._worker_main MEMORY_BYTES``.

Reads length-prefixed pickled ``(function, args)`` requests on stdin and answers
``("ok", result)`` or ``("error", exception)`` on stdout, until stdin closes. The address space
is capped first, so a decompression bomb fails here with MemoryError. Started by
:class:`medmodels.scans.worker.DecodePool`; only that trusted parent writes to its stdin.
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import Any

from medmodels.scans._frames import read_frame, write_frame


def _answer(kind: str, value: Any) -> bytes:
    try:
        return pickle.dumps((kind, value), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        fallback = RuntimeError(f"the worker's {kind} could not be sent ({type(value).__name__})")
        return pickle.dumps(("error", fallback), protocol=pickle.HIGHEST_PROTOCOL)


def main() -> None:
    """Serve requests until the parent closes stdin."""
    import resource

    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    if limit > 0:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    requests = sys.stdin.buffer
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # stray prints must not corrupt the protocol
    first = read_frame(requests)
    if first is None:
        return
    sys.path[:0] = [p for p in pickle.loads(first) if p not in sys.path]
    import medmodels.scans.load  # noqa: F401  (warm up: the import time is not the upload's)

    write_frame(replies, b"ready")
    while (frame := read_frame(requests)) is not None:
        try:
            fn, args = pickle.loads(frame)
            reply = _answer("ok", fn(*args))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # codec panics from Rust bindings are BaseExceptions
            reply = _answer("error", exc)
        write_frame(replies, reply)


if __name__ == "__main__":
    main()
