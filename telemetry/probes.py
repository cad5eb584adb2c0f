"""GPU memory probes and the fallback chain that asks them in turn.

Pure Python (no Django). Three probes, each a plain function returning a
``GpuReading`` or raising ``ProbeError`` with the reason in words:

    read_pynvml(*, index=0, nvml=None)                       NVML on this machine
    read_system_stats(*, base_url=None, client=None, fetch=None, index=None, timeout_s=5.0)
                                                             a ComfyUI backend's GET /system_stats
    read_nvidia_smi(*, executable="nvidia-smi", index=0, timeout_s=5.0)
                                                             nvidia-smi's CSV query, as a subprocess

``gpu_probe_chain(...)`` builds the list of ``Probe`` (name + zero-argument
reader) in the order and with the members asked for; ``take_snapshot(chain)``
asks each in turn until one answers and returns a frozen ``GpuSnapshot``. A
probe that fails leaves a note naming it and why; when another answers after
it, a last note names the one that answered. No GPU at all is a snapshot with
``probe=None`` and every figure None, not an error.

Memory is reported in MiB (2^20 bytes), and ``used`` is always total - free.
NVML's v2 memory info and nvidia-smi's memory.used leave the driver's reserve
out of "used" while NVML v1 counts it; free is the same in all three, so
total - free is the one figure every probe agrees on.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from generation.providers.url_policy import COMFYUI, GuardedTransport, UrlRefused

MIB = 1024 * 1024
DEFAULT_ORDER = ("pynvml", "system_stats", "nvidia_smi")

# Asked exactly as the recordings in tests/data/gpu were taken, so the tests
# replay what a real nvidia-smi printed for these arguments.
NVIDIA_SMI_FIELDS = (
    "index",
    "name",
    "uuid",
    "memory.total",
    "memory.used",
    "memory.free",
    "utilization.gpu",
    "driver_version",
)


class ProbeError(Exception):
    """A probe could not give a reading; the message says why, for the fallback note."""


@dataclass(frozen=True)
class GpuReading:
    name: str
    index: int | None
    total_mb: int
    free_mb: int

    @property
    def used_mb(self) -> int:
        return self.total_mb - self.free_mb


@dataclass(frozen=True)
class GpuSnapshot:
    """One look at the GPU. ``probe`` is None when no probe found one."""

    probe: str | None
    gpu_name: str | None
    gpu_index: int | None
    vram_total_mb: int | None
    vram_free_mb: int | None
    vram_used_mb: int | None
    notes: tuple[str, ...] = ()
    taken_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def has_gpu(self) -> bool:
        return self.probe is not None


@dataclass(frozen=True)
class Probe:
    name: str
    read: Callable[[], GpuReading]


def _mib(value_bytes: Any) -> int:
    return round(int(value_bytes) / MIB)


# -- pynvml ----------------------------------------------------------------------------


def read_pynvml(*, index: int = 0, nvml: Any = None) -> GpuReading:
    """Device ``index`` through NVML. ``nvml`` replaces the ``pynvml`` module (tests)."""
    if nvml is None:
        nvml = _import_pynvml()
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        raise ProbeError(f"NVML did not start ({type(exc).__name__}: {exc})") from exc
    try:
        count = nvml.nvmlDeviceGetCount()
        if count == 0:
            raise ProbeError("NVML sees no GPU")
        if not 0 <= index < count:
            raise ProbeError(f"NVML sees {count} GPU(s); there is no index {index}")
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = nvml.nvmlDeviceGetName(handle)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    except nvml.NVMLError as exc:
        raise ProbeError(f"NVML failed ({type(exc).__name__}: {exc})") from exc
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError:
            pass
    if isinstance(name, bytes):  # older bindings return bytes
        name = name.decode("utf-8", "replace")
    return GpuReading(name=str(name), index=index, total_mb=_mib(memory.total), free_mb=_mib(memory.free))


def _import_pynvml() -> Any:
    try:
        import pynvml
    except ImportError as exc:
        raise ProbeError(f"pynvml is not installed ({exc})") from exc
    return pynvml


# -- ComfyUI /system_stats ---------------------------------------------------------------


def read_system_stats(
    *,
    base_url: str | None = None,
    client: httpx.Client | None = None,
    fetch: Callable[[], Any] | None = None,
    index: int | None = None,
    timeout_s: float = 5.0,
) -> GpuReading:
    """The first GPU device (or the one with ``index``) in a backend's /system_stats.

    Give either ``fetch`` (returns the parsed JSON body) or ``base_url`` (and
    optionally an ``httpx.Client`` to send it with; give it a
    ``url_policy.GuardedTransport``, as the one built here has).
    """
    body = fetch() if fetch is not None else _get_system_stats(base_url, client, timeout_s)
    return parse_system_stats(body, index=index)


def _get_system_stats(base_url: str | None, client: httpx.Client | None, timeout_s: float) -> Any:
    if not base_url:
        raise ProbeError("no backend URL to ask")
    url = base_url.rstrip("/") + "/system_stats"
    try:
        if client is not None:
            response = client.get(url, timeout=timeout_s)
        else:
            with httpx.Client(
                timeout=timeout_s, follow_redirects=False, transport=GuardedTransport(COMFYUI)
            ) as own:
                response = own.get(url)
    except UrlRefused as exc:
        raise ProbeError(f"GET {url} refused: {exc.message}") from exc
    except httpx.HTTPError as exc:
        raise ProbeError(f"GET {url} failed ({type(exc).__name__})") from exc
    if response.status_code != 200:
        raise ProbeError(f"GET {url} answered {response.status_code}")
    try:
        return response.json()
    except ValueError as exc:
        raise ProbeError(f"GET {url} sent a body that is not JSON") from exc


def parse_system_stats(body: Any, *, index: int | None = None) -> GpuReading:
    """A reading from a /system_stats body; sizes there are bytes.

    A "cpu" device is not a GPU: ComfyUI started with --cpu reports the
    machine's RAM as its "vram", which would be a misleading GPU figure.
    """
    devices = body.get("devices") if isinstance(body, Mapping) else None
    if not isinstance(devices, list):
        raise ProbeError("the /system_stats body has no device list")
    gpus = [d for d in devices if isinstance(d, Mapping) and d.get("type") not in (None, "cpu")]
    if index is not None:
        gpus = [d for d in gpus if d.get("index") == index]
    if not gpus:
        kinds = ", ".join(sorted({str(d.get("type")) for d in devices if isinstance(d, Mapping)})) or "none"
        wanted = f" with index {index}" if index is not None else ""
        raise ProbeError(f"the backend reports no GPU{wanted} (device types: {kinds})")
    device = gpus[0]
    try:
        total, free = int(device["vram_total"]), int(device["vram_free"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ProbeError(f"the /system_stats device has no usable vram figures ({exc!r})") from exc
    raw_index = device.get("index")
    return GpuReading(
        name=comfyui_device_name(str(device.get("name", ""))),
        index=raw_index if isinstance(raw_index, int) else None,
        total_mb=_mib(total),
        free_mb=_mib(free),
    )


def comfyui_device_name(name: str) -> str:
    """ "cuda:0 NVIDIA H100 80GB HBM3 : cudaMallocAsync" -> "NVIDIA H100 80GB HBM3".

    ComfyUI decorates the torch device name with the device and the allocator;
    the bare name is what NVML and nvidia-smi report, so snapshots compare.
    """
    bare = name.split(" : ")[0].strip()
    head, _, rest = bare.partition(" ")
    if rest and ":" in head and head.split(":")[0].isalpha():
        bare = rest.strip()
    return bare or name


# -- nvidia-smi -----------------------------------------------------------------------------


def nvidia_smi_args(executable: str = "nvidia-smi") -> list[str]:
    return [executable, "--query-gpu=" + ",".join(NVIDIA_SMI_FIELDS), "--format=csv,noheader,nounits"]


def read_nvidia_smi(*, executable: str = "nvidia-smi", index: int = 0, timeout_s: float = 5.0) -> GpuReading:
    args = nvidia_smi_args(executable)
    try:
        done = subprocess.run(  # noqa: S603 - a fixed argument list, no shell
            args, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except FileNotFoundError as exc:
        raise ProbeError(f"{executable!r} was not found") from exc
    except PermissionError as exc:
        raise ProbeError(f"{executable!r} cannot be run ({exc})") from exc
    except subprocess.TimeoutExpired as exc:
        raise ProbeError(f"{executable!r} did not answer within {timeout_s:g} s") from exc
    except OSError as exc:
        raise ProbeError(f"{executable!r} cannot be run ({exc})") from exc
    if done.returncode != 0:
        # nvidia-smi writes its complaints on stdout.
        message = (done.stdout.strip() or done.stderr.strip() or "no message").splitlines()[0]
        raise ProbeError(f"{executable!r} exited with status {done.returncode}: {message}")
    return parse_nvidia_smi(done.stdout, index=index)


def parse_nvidia_smi(output: str, *, index: int = 0) -> GpuReading:
    """A reading from ``--format=csv,noheader,nounits`` output, sizes in MiB."""
    rows = [line for line in output.splitlines() if line.strip()]
    if not rows:
        raise ProbeError("nvidia-smi listed no GPU")
    for row in rows:
        cells = [cell.strip() for cell in row.split(",")]
        if len(cells) != len(NVIDIA_SMI_FIELDS):
            raise ProbeError(f"nvidia-smi printed an unexpected row: {row.strip()!r}")
        values = dict(zip(NVIDIA_SMI_FIELDS, cells, strict=True))
        try:
            row_index = int(values["index"])
            if row_index != index:
                continue
            return GpuReading(
                name=values["name"],
                index=row_index,
                total_mb=int(values["memory.total"]),
                free_mb=int(values["memory.free"]),
            )
        except ValueError as exc:
            raise ProbeError(f"nvidia-smi printed a figure that is not a number: {row.strip()!r}") from exc
    raise ProbeError(f"nvidia-smi lists {len(rows)} GPU(s); there is no index {index}")


# -- the chain -------------------------------------------------------------------------------


def gpu_probe_chain(
    *,
    order: Sequence[str] = DEFAULT_ORDER,
    index: int = 0,
    nvml: Any = None,
    system_stats_url: str | None = None,
    system_stats_client: httpx.Client | None = None,
    system_stats_fetch: Callable[[], Any] | None = None,
    nvidia_smi: str = "nvidia-smi",
    timeout_s: float = 5.0,
) -> list[Probe]:
    """The probes named in ``order``, in that order; a name left out is not asked.

    pynvml and nvidia-smi see this machine's GPUs, /system_stats the backend's:
    put /system_stats first for a remote backend.
    """
    builders: dict[str, Callable[[], GpuReading]] = {
        "pynvml": lambda: read_pynvml(index=index, nvml=nvml),
        "system_stats": lambda: read_system_stats(
            base_url=system_stats_url,
            client=system_stats_client,
            fetch=system_stats_fetch,
            index=index,
            timeout_s=timeout_s,
        ),
        "nvidia_smi": lambda: read_nvidia_smi(executable=nvidia_smi, index=index, timeout_s=timeout_s),
    }
    unknown = [name for name in order if name not in builders]
    if unknown:
        raise ValueError(f"unknown GPU probe(s): {', '.join(unknown)}; known: {', '.join(builders)}")
    return [Probe(name, builders[name]) for name in order]


def take_snapshot(chain: Sequence[Probe], *, clock: Callable[[], datetime] | None = None) -> GpuSnapshot:
    """Ask each probe in turn; the first reading wins. Never raises for a missing GPU."""
    now = clock or (lambda: datetime.now(UTC))
    notes: list[str] = []
    failed: list[str] = []
    for probe in chain:
        try:
            reading = probe.read()
        except ProbeError as exc:
            notes.append(f"{probe.name} failed: {exc}")
            failed.append(probe.name)
            continue
        if failed:
            notes.append(f"{probe.name} answered after {', '.join(failed)} failed")
        return GpuSnapshot(
            probe=probe.name,
            gpu_name=reading.name,
            gpu_index=reading.index,
            vram_total_mb=reading.total_mb,
            vram_free_mb=reading.free_mb,
            vram_used_mb=reading.used_mb,
            notes=tuple(notes),
            taken_at=now(),
        )
    notes.append(
        f"no GPU figures: {', '.join(failed)} gave none" if failed else "no GPU figures: no probe enabled"
    )
    return GpuSnapshot(
        probe=None,
        gpu_name=None,
        gpu_index=None,
        vram_total_mb=None,
        vram_free_mb=None,
        vram_used_mb=None,
        notes=tuple(notes),
        taken_at=now(),
    )
