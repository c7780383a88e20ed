"""Measured figures: the host, cold start, warm latency per pipeline stage, throughput, memory.

The benchmark runs in a fresh child process (:func:`_worker_main`) so that

* cold start really is cold (no cached session, no warm imports of codecs);
* peak memory is the child's own high-water mark, read from ``VmHWM`` in
  ``/proc/self/status`` (elsewhere: ``getrusage(RUSAGE_SELF).ru_maxrss``). Not
  ``RUSAGE_CHILDREN``: that is the largest of *all* children a process ever waited for, and on
  Linux a child's ``ru_maxrss`` can carry its parent's size across ``exec``;
* a long-lived parent (the app) keeps its memory and its session cache untouched.

What one run measures, on the model's reference input (see :mod:`medmodels.sheets.reference`):

``decode``       ``load_scans`` of the sample files (absent for a synthetic reference);
``preprocess``, ``infer``, ``postprocess``: ``predict()``'s own per-stage timings;
``end_to_end``   decode plus the whole ``predict()`` call.

Cold start is the first decode, session creation and first ``predict()`` in the fresh process.
Warm figures come from ``runs`` repetitions after ``warmup`` unrecorded ones, with onnxruntime's
default threads (what the app uses). Throughput is end-to-end predictions per second with one
session on 1 thread, one session on all usable cores (intra-op threads), and one single-thread
session per core run in parallel threads.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from medmodels.sheets.errors import SheetError
from medmodels.sheets.reference import Reference

Progress = Callable[[float, str], None]
"""Called with (fraction done 0–1, what is happening) while a measurement runs."""

_MB = 1024 * 1024
STAGES = ("decode", "preprocess", "infer", "postprocess", "end_to_end")
ThroughputMode = Literal["1-thread", "intra-op", "parallel-sessions"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------
# Host


class Host(_Model):
    """The machine a sheet was measured on (provenance: ``read`` from the operating system)."""

    provenance: str = "read"
    source: str = "/proc/cpuinfo, os.sched_getaffinity, cgroup cpu.max, sysconf, platform"
    fingerprint: str
    cpu_model: str
    logical_cores: int
    usable_cores: int
    physical_cores: int | None = None
    ram_bytes: int
    ram_limit_bytes: int | None = None
    os: str
    machine: str
    python: str
    onnxruntime_version: str
    providers: list[str]

    def describe(self) -> str:
        """``Intel Xeon ... · 2 cores · 23.5 GiB · onnxruntime 1.32.0``."""
        ram = (self.ram_limit_bytes or self.ram_bytes) / 1024**3
        return (
            f"{self.cpu_model} · {self.usable_cores} usable core(s) · {ram:.1f} GiB RAM · "
            f"{self.os} · onnxruntime {self.onnxruntime_version}"
        )

    def expected_fingerprint(self) -> str:
        """The fingerprint these facts give (a stored sheet must match it)."""
        return host_fingerprint(
            cpu_model=self.cpu_model,
            logical_cores=self.logical_cores,
            usable_cores=self.usable_cores,
            ram_bytes=self.ram_limit_bytes or self.ram_bytes,
            system=self.os.split(" ")[0],
            machine=self.machine,
            onnxruntime_version=self.onnxruntime_version,
        )


def host_fingerprint(
    *,
    cpu_model: str,
    logical_cores: int,
    usable_cores: int,
    ram_bytes: int,
    system: str,
    machine: str,
    onnxruntime_version: str,
) -> str:
    """16 hex digits identifying a hardware + runtime configuration (not the machine's name:
    two identical cloud instances share a fingerprint, an onnxruntime upgrade changes it)."""
    facts = {
        "cpu": cpu_model,
        "logical": logical_cores,
        "usable": usable_cores,
        "ram_gib": round(ram_bytes / 1024**3),
        "system": system,
        "machine": machine,
        "onnxruntime": onnxruntime_version,
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def _cpuinfo() -> tuple[str, int | None]:
    model = ""
    cores: set[tuple[str, str]] = set()
    physical = core = ""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key in ("model name", "Hardware", "Model", "cpu model") and not model:
            model = value
        elif key == "physical id":
            physical = value
        elif key == "core id":
            core = value
            cores.add((physical, core))
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    return " ".join(model.split()), (len(cores) or None)


def _cgroup_cpus() -> float | None:
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def _cgroup_memory() -> int | None:
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def usable_cores() -> int:
    """Cores this process may use (affinity mask and cgroup CPU quota considered)."""
    logical = os.cpu_count() or 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        cores = logical
    quota = _cgroup_cpus()
    if quota is not None:
        cores = max(1, min(cores, math.floor(quota)))
    return cores


def host_info() -> Host:
    """Facts about this machine and its onnxruntime."""
    import onnxruntime as ort

    cpu_model, physical = _cpuinfo()
    logical = os.cpu_count() or 1
    usable = usable_cores()
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        ram = 0
    limit = _cgroup_memory()
    if limit is not None and limit >= ram:
        limit = None
    system = platform.system()
    version = str(ort.__version__)
    return Host(
        fingerprint=host_fingerprint(
            cpu_model=cpu_model,
            logical_cores=logical,
            usable_cores=usable,
            ram_bytes=limit or ram,
            system=system,
            machine=platform.machine(),
            onnxruntime_version=version,
        ),
        cpu_model=cpu_model,
        logical_cores=logical,
        usable_cores=usable,
        physical_cores=physical,
        ram_bytes=ram,
        ram_limit_bytes=limit,
        os=f"{system} {platform.release()}",
        machine=platform.machine(),
        python=platform.python_version(),
        onnxruntime_version=version,
        providers=list(ort.get_available_providers()),
    )


# --------------------------------------------------------------------------------------------
# Results


class StageStats(_Model):
    """Spread of one stage's warm timings, in milliseconds, over ``n`` runs."""

    n: int
    mean_ms: float
    stdev_ms: float
    cv: float
    min_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def stage_stats(values_ms: list[float]) -> StageStats:
    """Mean, sample standard deviation, coefficient of variation and percentiles
    (linear interpolation: with few runs p95/p99 are close to the maximum)."""
    a = np.asarray(values_ms, dtype=float)
    if a.size == 0:
        raise ValueError("no timings")
    mean = float(a.mean())
    stdev = float(a.std(ddof=1)) if a.size > 1 else 0.0
    p50, p95, p99 = (float(v) for v in np.percentile(a, [50, 95, 99]))
    return StageStats(
        n=int(a.size),
        mean_ms=mean,
        stdev_ms=stdev,
        cv=stdev / mean if mean > 0 else 0.0,
        min_ms=float(a.min()),
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        max_ms=float(a.max()),
    )


class ColdStart(_Model):
    """The first prediction in a fresh process, in milliseconds."""

    decode_ms: float | None
    session_ms: float
    first_run_ms: float
    total_ms: float


class Throughput(_Model):
    """End-to-end predictions per second in one configuration."""

    mode: ThroughputMode
    sessions: int
    intra_op_threads: int
    predictions: int
    seconds: float
    per_second: float

    @property
    def per_hour(self) -> float:
        """Predictions per hour at this rate."""
        return self.per_second * 3600.0


class Memory(_Model):
    """Resident memory of the benchmark process, in MiB."""

    baseline_mb: float | None
    peak_mb: float
    peak_all_mb: float
    method: str

    @property
    def model_mb(self) -> float:
        """Peak minus the baseline of an idle process with the libraries imported: what the
        model, its session and one scan add."""
        return self.peak_mb - (self.baseline_mb or 0.0)


class Bench(_Model):
    """Everything measured on one host for one model version (provenance: ``measured``)."""

    provenance: str = "measured"
    source: str
    started: datetime
    seconds: float
    runs: int
    warmup: int
    provider: str
    threads: str
    reference: Reference
    cold: ColdStart
    stages: dict[str, StageStats]
    throughput: list[Throughput]
    memory: Memory
    warnings: list[str]

    def best_throughput(self) -> Throughput:
        """The fastest configuration measured."""
        return max(self.throughput, key=lambda t: t.per_second)

    def throughput_for(self, mode: ThroughputMode) -> Throughput | None:
        """The figure for one configuration, if it was measured."""
        return next((t for t in self.throughput if t.mode == mode), None)


# --------------------------------------------------------------------------------------------
# Memory of this process


def _status_bytes(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            parts = line.split()
            return int(parts[1]) * 1024
    return None


def peak_rss() -> tuple[int, str]:
    """This process's peak resident memory in bytes and how it was read."""
    hwm = _status_bytes("VmHWM")
    if hwm is not None:
        return hwm, "VmHWM of the benchmark's own child process (/proc/self/status)"
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024
    return usage * scale, "ru_maxrss of the benchmark's own child process (getrusage)"


# --------------------------------------------------------------------------------------------
# The child process


def _child(request: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Run the measurement described by ``request`` (see :func:`run_benchmark`)."""
    from medmodels.config import load_settings
    from medmodels.inference import predict
    from medmodels.scans import load_scans
    from medmodels.sheets import _pipeline
    from medmodels.sheets.reference import synthetic_scan
    from medmodels.store.manifest import Manifest
    from medmodels.store.store import ModelVersion, sha256_file

    # Baseline: an idle process with the libraries imported, before any scan or session.
    baseline = _status_bytes("VmRSS")
    started = datetime.now(UTC)
    t_begin = time.perf_counter()
    runs, warmup = int(request["runs"]), int(request["warmup"])
    with_throughput = bool(request.get("throughput", True))
    host = host_info()
    model_path = Path(request["model_path"])
    if sha256_file(model_path) != request["model_sha256"]:
        raise SheetError(f"{model_path.name} changed while it was being measured; measure again")
    manifest = Manifest.from_dict(request["manifest"])
    model = ModelVersion(
        name=manifest.name,
        version=manifest.version,
        folder=model_path.parent,
        manifest=manifest,
        model_path=model_path,
        model_sha256=request["model_sha256"],
        manifest_sha256=request.get("manifest_sha256", ""),
    )
    reference = Reference.model_validate(request["reference"])
    settings = load_settings()
    sample = request.get("reference_path")
    series = int(request.get("series", 0))
    total_steps = 2 + warmup + runs
    cores = host.usable_cores
    per_config = max(3, runs // 2)
    if with_throughput:
        total_steps += per_config * (3 if cores > 1 else 1)
    done = 0

    def tick(message: str) -> None:
        nonlocal done
        done += 1
        emit({"event": "progress", "fraction": min(1.0, done / total_steps), "message": message})

    synthetic = synthetic_scan(reference) if reference.kind == "synthetic" else None

    def decode() -> tuple[Any, float | None]:
        if synthetic is not None:
            return synthetic, None
        t0 = time.perf_counter()
        scans = load_scans([sample], settings=settings).scans
        if len(scans) <= series:
            raise SheetError(f"the reference scan {reference.name} could not be read")
        return scans[series], (time.perf_counter() - t0) * 1000

    def one() -> dict[str, float]:
        t0 = time.perf_counter()
        scan, decode_ms = decode()
        prediction = predict(scan, model)
        record = {k: prediction.timings_ms[k] for k in ("preprocess", "infer", "postprocess")}
        record["end_to_end"] = (time.perf_counter() - t0) * 1000
        if decode_ms is not None:
            record["decode"] = decode_ms
        return record

    # Cold start: the first decode, session creation and first predict() in this process.
    emit({"event": "progress", "fraction": 0.0, "message": "cold start"})
    scan, cold_decode = decode()
    tick("cold start: scan decoded")
    first = predict(scan, model)
    session_ms = first.timings_ms["load"]
    first_run_ms = first.timings_ms["total"] - session_ms
    cold = ColdStart(
        decode_ms=cold_decode,
        session_ms=session_ms,
        first_run_ms=first_run_ms,
        total_ms=(cold_decode or 0.0) + session_ms + first_run_ms,
    )
    tick("cold start: first prediction")
    for i in range(warmup):
        one()
        tick(f"warm-up {i + 1}/{warmup}")
    records: list[dict[str, float]] = []
    for i in range(runs):
        records.append(one())
        tick(f"warm run {i + 1}/{runs}")
    peak_single, method = peak_rss()
    stages = {
        stage: stage_stats([r[stage] for r in records])
        for stage in STAGES
        if all(stage in r for r in records)
    }

    throughput: list[Throughput] = []
    if with_throughput:
        configs: list[tuple[ThroughputMode, int, int]] = [("1-thread", 1, 1)]
        if cores > 1:
            configs += [("intra-op", 1, cores), ("parallel-sessions", cores, 1)]
        for mode, sessions, intra in configs:
            throughput.append(
                _throughput(
                    mode,
                    sessions,
                    intra,
                    per_config,
                    factory=functools.partial(
                        _pipeline.new_session, model_path, intra_op=intra, inter_op=1
                    ),
                    one=one,
                    tick=tick,
                )
            )
    peak_all, _ = peak_rss()

    warnings: list[str] = []
    cv_warn = float(request.get("cv_warn", 0.15))
    for stage in ("end_to_end", "infer"):
        if stage in stages and stages[stage].cv > cv_warn:
            warnings.append(
                f"{stage.replace('_', '-')} latency varied a lot between runs (coefficient of "
                f"variation {stages[stage].cv:.0%}, above {cv_warn:.0%}): the host was busy or "
                "changing speed. Close other work and measure again, with more runs (--runs 50)."
            )
    if runs < 100:
        warnings.append(
            f"p99 from {runs} runs is an interpolation between the slowest runs; measure with "
            "--runs 100 or more for a meaningful p99."
        )
    bench = Bench(
        source=(
            f"medmodels sheet, child process on host {host.fingerprint} ({host.cpu_model}), "
            f"{runs} warm runs after {warmup} warm-up"
        ),
        started=started,
        seconds=time.perf_counter() - t_begin,
        runs=runs,
        warmup=warmup,
        provider=first.provider,
        threads="onnxruntime default (intra-op threads = physical cores) for latency; "
        "throughput as stated per configuration",
        reference=reference,
        cold=cold,
        stages=stages,
        throughput=throughput,
        memory=Memory(
            baseline_mb=None if baseline is None else baseline / _MB,
            peak_mb=peak_single / _MB,
            peak_all_mb=peak_all / _MB,
            method=method
            + "; peak_mb after cold start and warm runs with one session, peak_all_mb after "
            "the throughput runs (several sessions)",
        ),
        warnings=warnings,
    )
    return {"host": host.model_dump(mode="json"), "bench": bench.model_dump(mode="json")}


def _throughput(
    mode: ThroughputMode,
    sessions: int,
    intra: int,
    count: int,
    *,
    factory: Callable[[], Any],
    one: Callable[[], dict[str, float]],
    tick: Callable[[str], None],
) -> Throughput:
    from medmodels.sheets import _pipeline

    label = f"throughput {mode}"
    with _pipeline.sessions(factory):
        if sessions == 1:
            one()  # creates this configuration's session
            t0 = time.perf_counter()
            for i in range(count):
                one()
                tick(f"{label} {i + 1}/{count}")
            seconds = time.perf_counter() - t0
            total = count
        else:
            per_thread = math.ceil(count / sessions)
            barrier = threading.Barrier(sessions + 1)
            errors: list[BaseException] = []
            lock = threading.Lock()

            def work() -> None:
                try:
                    one()
                    barrier.wait()
                    for _ in range(per_thread):
                        one()
                        with lock:
                            tick(label)
                except BaseException as exc:  # reported below
                    errors.append(exc)
                    barrier.abort()

            threads = [threading.Thread(target=work, daemon=True) for _ in range(sessions)]
            for thread in threads:
                thread.start()
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
            t0 = time.perf_counter()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - t0
            if errors:
                real = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
                raise (real or errors)[0]
            total = per_thread * sessions
    return Throughput(
        mode=mode,
        sessions=sessions,
        intra_op_threads=intra,
        predictions=total,
        seconds=seconds,
        per_second=total / seconds if seconds > 0 else 0.0,
    )


def _worker_main() -> int:
    """Entry point of the child: read the request on stdin, write JSON lines on stdout."""
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # anything else printed goes to stderr, never into the protocol
    sys.stdout = sys.stderr

    def emit(event: dict[str, Any]) -> None:
        protocol.write(json.dumps(event) + "\n")
        protocol.flush()

    try:
        request = json.loads(sys.stdin.read())
        result = _child(request, emit)
    except Exception as exc:
        emit({"event": "error", "message": str(exc) or type(exc).__name__})
        return 1
    emit({"event": "result", **result})
    return 0


# --------------------------------------------------------------------------------------------
# The parent side

# Not ``-m medmodels.sheets.bench``: the package imports this module first, and runpy would
# then run a second copy of it as ``__main__``.
_WORKER_CODE = "from medmodels.sheets.bench import _worker_main; raise SystemExit(_worker_main())"


def run_benchmark(
    *,
    model_path: Path,
    model_sha256: str,
    manifest_data: dict[str, Any],
    reference: Reference,
    reference_path: Path | None = None,
    runs: int = 20,
    warmup: int = 3,
    throughput: bool = True,
    cv_warn: float = 0.15,
    timeout_s: float = 900.0,
    progress: Progress | None = None,
) -> tuple[Host, Bench]:
    """Measure one model file on its reference input in a fresh child process.

    ``reference_path`` is where a sample reference's files are (ignored for synthetic ones).
    Raises :class:`SheetError` with the child's own message when the measurement fails or takes
    longer than ``timeout_s``."""
    if runs < 1 or warmup < 0:
        raise SheetError("runs must be at least 1 and warm-up runs at least 0")
    request = {
        "model_path": str(Path(model_path).resolve()),
        "model_sha256": model_sha256,
        "manifest": manifest_data,
        "reference": reference.model_dump(mode="json"),
        "reference_path": None if reference_path is None else str(Path(reference_path).resolve()),
        "runs": runs,
        "warmup": warmup,
        "throughput": throughput,
        "cv_warn": cv_warn,
    }
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            encoding="utf-8",
        )
        timed_out = threading.Event()

        def stop() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout_s, stop)
        timer.start()
        result: dict[str, Any] | None = None
        error: str | None = None
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(request))
            proc.stdin.close()
            for line in proc.stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                kind = event.get("event")
                if kind == "progress" and progress is not None:
                    progress(float(event["fraction"]), str(event["message"]))
                elif kind == "result":
                    result = event
                elif kind == "error":
                    error = str(event.get("message"))
            proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()  # type: ignore[union-attr]
        if result is None:
            if error is None:
                stderr.seek(0)
                tail = " ".join(stderr.read()[-600:].split())
                if timed_out.is_set():
                    error = f"it was stopped after {timeout_s:.0f} s (MEDMODELS_BENCH_TIMEOUT_S)"
                else:
                    error = f"the child process exited with code {proc.returncode}: {tail}"
            raise SheetError(f"the benchmark failed: {error}")
    return Host.model_validate(result["host"]), Bench.model_validate(result["bench"])
