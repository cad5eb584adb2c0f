"""GPU probes against what real tools printed on an H100 (tests/data/gpu), and the fallback chain."""

from __future__ import annotations

import json
import shutil
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pynvml
import pytest

from telemetry.probes import (
    GpuReading,
    Probe,
    ProbeError,
    comfyui_device_name,
    gpu_probe_chain,
    nvidia_smi_args,
    parse_system_stats,
    read_nvidia_smi,
    read_pynvml,
    read_system_stats,
    take_snapshot,
)

GPU_DATA = Path(__file__).resolve().parents[1] / "data" / "gpu"
H100 = "NVIDIA H100 80GB HBM3"


def _recorded(name: str) -> str:
    return (GPU_DATA / name).read_text(encoding="utf-8")


# -- pynvml ----------------------------------------------------------------------------------


class RecordedNvml:
    """The slice of the pynvml module the probe uses, answering from pynvml.json.

    Errors are pynvml's own classes, raised where the real library raises them.
    """

    NVMLError = pynvml.NVMLError

    def __init__(self, recording: dict[str, Any]) -> None:
        self.recording = recording
        self.initialised = 0

    def nvmlInit(self) -> None:
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        if not self.initialised:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)
        self.initialised -= 1

    def nvmlDeviceGetCount(self) -> int:
        return int(self.recording["device_count"])

    def nvmlDeviceGetHandleByIndex(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.recording["device_count"]:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self.recording["devices"][index]

    def nvmlDeviceGetName(self, handle: dict[str, Any]) -> str:
        return str(handle["name"])

    def nvmlDeviceGetMemoryInfo(self, handle: dict[str, Any]) -> SimpleNamespace:
        return SimpleNamespace(**handle["memory"])


@pytest.fixture
def recorded_nvml() -> RecordedNvml:
    return RecordedNvml(json.loads(_recorded("pynvml.json")))


def test_pynvml_reads_the_recorded_h100(recorded_nvml: RecordedNvml) -> None:
    reading = read_pynvml(nvml=recorded_nvml)
    # 85520809984 and 85017493504 bytes are exactly 81559 and 81079 MiB, as nvidia-smi printed.
    assert reading == GpuReading(name=H100, index=0, total_mb=81559, free_mb=81079)
    assert reading.used_mb == 480
    assert recorded_nvml.initialised == 0


def test_pynvml_names_a_missing_device_index(recorded_nvml: RecordedNvml) -> None:
    with pytest.raises(ProbeError, match="there is no index 3"):
        read_pynvml(index=3, nvml=recorded_nvml)
    assert recorded_nvml.initialised == 0


def test_pynvml_error_after_start_is_a_probe_error(recorded_nvml: RecordedNvml) -> None:
    def broken(handle: object) -> None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)

    recorded_nvml.nvmlDeviceGetMemoryInfo = broken  # type: ignore[method-assign,assignment]
    with pytest.raises(ProbeError, match="NVMLError_GpuIsLost"):
        read_pynvml(nvml=recorded_nvml)


def test_pynvml_with_no_device_is_a_probe_error(recorded_nvml: RecordedNvml) -> None:
    recorded_nvml.recording["device_count"] = 0
    with pytest.raises(ProbeError, match="NVML sees no GPU"):
        read_pynvml(nvml=recorded_nvml)


def _nvml_library_present() -> bool:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


@pytest.mark.skipif(_nvml_library_present(), reason="this machine has an NVIDIA driver")
def test_real_pynvml_without_a_driver_is_a_note() -> None:
    with pytest.raises(ProbeError, match="NVMLError_LibraryNotFound"):
        read_pynvml()
    snapshot = take_snapshot(gpu_probe_chain(order=["pynvml"]))
    assert snapshot.probe is None
    assert snapshot.notes[0].startswith("pynvml failed: NVML did not start (NVMLError_LibraryNotFound")


@pytest.mark.skipif(not _nvml_library_present(), reason="no NVIDIA driver on this machine")
def test_real_pynvml_reads_this_machines_gpu() -> None:
    reading = read_pynvml()
    assert reading.name and reading.total_mb > 0
    assert 0 <= reading.free_mb <= reading.total_mb


# -- nvidia-smi -----------------------------------------------------------------------------


def _fake_nvidia_smi(tmp_path: Path, *, answer: str, status: int, expect_args: list[str] | None) -> Path:
    """An executable that answers like nvidia-smi did when recorded.

    With ``expect_args`` it answers only those arguments, so the probe is held
    to asking exactly what was recorded.
    """
    script = tmp_path / "nvidia-smi"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"expected = {expect_args!r}\n"
        "if expected is not None and sys.argv[1:] != expected:\n"
        "    print('unexpected arguments:', sys.argv[1:])\n"
        "    sys.exit(99)\n"
        f"sys.stdout.write({answer!r})\n"
        f"sys.exit({status})\n",
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script


def test_nvidia_smi_probe_asks_what_was_recorded() -> None:
    meta = json.loads(_recorded("nvidia-smi-query.csv.meta"))
    assert nvidia_smi_args("nvidia-smi") == meta["args"]


def test_nvidia_smi_reads_the_recorded_csv(tmp_path: Path) -> None:
    meta = json.loads(_recorded("nvidia-smi-query.csv.meta"))
    script = _fake_nvidia_smi(
        tmp_path, answer=_recorded("nvidia-smi-query.csv"), status=meta["rc"], expect_args=meta["args"][1:]
    )
    reading = read_nvidia_smi(executable=str(script))
    assert reading == GpuReading(name=H100, index=0, total_mb=81559, free_mb=81079)
    # nvidia-smi printed memory.used 0; total - free counts the driver's reserve as pynvml v1 does.
    assert reading.used_mb == 480


def test_nvidia_smi_bad_field_answer_is_a_probe_error(tmp_path: Path) -> None:
    meta = json.loads(_recorded("nvidia-smi-bad-field.txt.meta"))
    script = _fake_nvidia_smi(
        tmp_path, answer=_recorded("nvidia-smi-bad-field.txt"), status=meta["rc"], expect_args=None
    )
    with pytest.raises(ProbeError) as caught:
        read_nvidia_smi(executable=str(script))
    assert str(caught.value) == (
        f'{str(script)!r} exited with status 2: Field "not.a.field" is not a valid field to query.'
    )


def test_nvidia_smi_missing_binary_is_a_probe_error(tmp_path: Path) -> None:
    missing = tmp_path / "bin" / "nvidia-smi"
    with pytest.raises(ProbeError, match="was not found"):
        read_nvidia_smi(executable=str(missing))


def test_nvidia_smi_that_hangs_is_cut_off(tmp_path: Path) -> None:
    script = tmp_path / "nvidia-smi"
    script.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(30)\n", encoding="utf-8")
    script.chmod(0o755)
    with pytest.raises(ProbeError, match=r"did not answer within 0\.5 s"):
        read_nvidia_smi(executable=str(script), timeout_s=0.5)


def test_nvidia_smi_file_that_cannot_run_is_a_probe_error(tmp_path: Path) -> None:
    script = tmp_path / "nvidia-smi"
    script.write_text("not a program\n", encoding="utf-8")
    script.chmod(0o644)
    with pytest.raises(ProbeError, match="cannot be run"):
        read_nvidia_smi(executable=str(script))


def test_nvidia_smi_names_a_missing_index(tmp_path: Path) -> None:
    script = _fake_nvidia_smi(tmp_path, answer=_recorded("nvidia-smi-query.csv"), status=0, expect_args=None)
    with pytest.raises(ProbeError, match="lists 1 GPU"):
        read_nvidia_smi(executable=str(script), index=1)


@pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="no nvidia-smi on this machine")
def test_real_nvidia_smi_agrees_with_the_contract() -> None:
    reading = read_nvidia_smi()
    assert reading.name and reading.total_mb > 0
    assert 0 <= reading.free_mb <= reading.total_mb


# -- /system_stats over HTTP -----------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, bytes]] = {}

    def do_GET(self) -> None:
        status, body = self.routes.get(self.path, (404, b""))
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stats_server() -> Iterator[tuple[str, dict[str, tuple[int, bytes]]]]:
    routes: dict[str, tuple[int, bytes]] = {}
    handler = type("Handler", (_Handler,), {"routes": routes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", routes
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def refusing_url() -> Iterator[str]:
    # Bound but never listening: the kernel refuses connections, and nobody else can take the port.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def test_system_stats_reads_a_cuda_device_over_http(stats_server: tuple[str, dict[str, Any]]) -> None:
    url, routes = stats_server
    routes["/system_stats"] = (200, _recorded("system_stats-cuda-constructed.json").encode())
    reading = read_system_stats(base_url=url + "/")
    assert reading == GpuReading(name=H100, index=0, total_mb=81559, free_mb=81079)


def test_system_stats_uses_a_given_client(stats_server: tuple[str, dict[str, Any]]) -> None:
    url, routes = stats_server
    routes["/system_stats"] = (200, _recorded("system_stats-cuda-constructed.json").encode())
    with httpx.Client() as client:
        assert read_system_stats(base_url=url, client=client).total_mb == 81559


def test_system_stats_of_a_cpu_server_is_no_gpu(stats_server: tuple[str, dict[str, Any]]) -> None:
    url, routes = stats_server
    routes["/system_stats"] = (200, _recorded("system_stats-cpu.json").encode())
    with pytest.raises(ProbeError, match=r"reports no GPU \(device types: cpu\)"):
        read_system_stats(base_url=url)


def test_system_stats_answering_500_is_a_probe_error(stats_server: tuple[str, dict[str, Any]]) -> None:
    url, routes = stats_server
    routes["/system_stats"] = (500, b"500 Internal Server Error\n\nServer got itself in trouble")
    with pytest.raises(ProbeError, match="answered 500"):
        read_system_stats(base_url=url)


def test_system_stats_that_is_not_json_is_a_probe_error(stats_server: tuple[str, dict[str, Any]]) -> None:
    url, routes = stats_server
    routes["/system_stats"] = (200, b"<html>")
    with pytest.raises(ProbeError, match="not JSON"):
        read_system_stats(base_url=url)


def test_system_stats_refused_is_a_probe_error(refusing_url: str) -> None:
    with pytest.raises(ProbeError, match="ConnectError"):
        read_system_stats(base_url=refusing_url, timeout_s=2)


def test_system_stats_takes_a_fetch_callable() -> None:
    body = json.loads(_recorded("system_stats-cuda-constructed.json"))
    assert read_system_stats(fetch=lambda: body).name == H100


def test_system_stats_picks_the_device_by_index() -> None:
    body = json.loads(_recorded("system_stats-cuda-constructed.json"))
    second = dict(body["devices"][0], index=1, name="cuda:1 NVIDIA L4 : native", vram_total=24 * 2**30)
    body["devices"].append(second)
    assert parse_system_stats(body, index=1).name == "NVIDIA L4"
    with pytest.raises(ProbeError, match="no GPU with index 2"):
        parse_system_stats(body, index=2)


@pytest.mark.parametrize(
    ("raw", "bare"),
    [
        ("cuda:0 NVIDIA H100 80GB HBM3 : cudaMallocAsync", H100),
        ("cuda:1 NVIDIA L4 : native", "NVIDIA L4"),
        ("cpu", "cpu"),
        ("NVIDIA A10", "NVIDIA A10"),
    ],
)
def test_comfyui_device_names_are_reduced_to_the_gpu_name(raw: str, bare: str) -> None:
    assert comfyui_device_name(raw) == bare


# -- the chain ----------------------------------------------------------------------------------


def test_first_probe_that_answers_wins_without_notes(recorded_nvml: RecordedNvml) -> None:
    snapshot = take_snapshot(gpu_probe_chain(nvml=recorded_nvml, nvidia_smi="/nonexistent"))
    assert (snapshot.probe, snapshot.gpu_name, snapshot.gpu_index) == ("pynvml", H100, 0)
    assert (snapshot.vram_total_mb, snapshot.vram_free_mb, snapshot.vram_used_mb) == (81559, 81079, 480)
    assert snapshot.notes == ()
    assert snapshot.taken_at.tzinfo is not None


def test_each_failed_probe_leaves_a_note_and_the_last_names_who_answered(
    tmp_path: Path, refusing_url: str
) -> None:
    script = _fake_nvidia_smi(tmp_path, answer=_recorded("nvidia-smi-query.csv"), status=0, expect_args=None)
    broken = RecordedNvml({"device_count": 0, "devices": []})
    chain = gpu_probe_chain(nvml=broken, system_stats_url=refusing_url, nvidia_smi=str(script), timeout_s=2)
    snapshot = take_snapshot(chain)
    assert snapshot.probe == "nvidia_smi"
    assert snapshot.gpu_name == H100
    assert len(snapshot.notes) == 3
    assert snapshot.notes[0] == "pynvml failed: NVML sees no GPU"
    assert snapshot.notes[1].startswith("system_stats failed: GET " + refusing_url)
    assert snapshot.notes[2] == "nvidia_smi answered after pynvml, system_stats failed"


def test_no_gpu_anywhere_is_a_recorded_state(tmp_path: Path, refusing_url: str) -> None:
    chain = gpu_probe_chain(
        nvml=RecordedNvml({"device_count": 0, "devices": []}),
        system_stats_url=refusing_url,
        nvidia_smi=str(tmp_path / "missing"),
        timeout_s=2,
    )
    snapshot = take_snapshot(chain)
    assert not snapshot.has_gpu
    assert snapshot.vram_total_mb is None and snapshot.gpu_name is None
    assert snapshot.notes[-1] == "no GPU figures: pynvml, system_stats, nvidia_smi gave none"


def test_the_order_and_members_of_the_chain_are_parameters(
    recorded_nvml: RecordedNvml, stats_server: tuple[str, dict[str, Any]]
) -> None:
    url, routes = stats_server
    routes["/system_stats"] = (200, _recorded("system_stats-cuda-constructed.json").encode())
    chain = gpu_probe_chain(order=["system_stats", "pynvml"], nvml=recorded_nvml, system_stats_url=url)
    assert [probe.name for probe in chain] == ["system_stats", "pynvml"]
    assert take_snapshot(chain).probe == "system_stats"
    assert [p.name for p in gpu_probe_chain(order=["nvidia_smi"])] == ["nvidia_smi"]
    with pytest.raises(ValueError, match="unknown GPU probe"):
        gpu_probe_chain(order=["rocm-smi"])


def test_an_empty_chain_records_that_no_probe_was_enabled() -> None:
    assert take_snapshot([]).notes == ("no GPU figures: no probe enabled",)


def test_system_stats_without_a_url_is_a_note() -> None:
    snapshot = take_snapshot(gpu_probe_chain(order=["system_stats"]))
    assert snapshot.notes[0] == "system_stats failed: no backend URL to ask"


def test_a_custom_probe_can_join_the_chain() -> None:
    def reader() -> GpuReading:
        return GpuReading(name="test GPU", index=2, total_mb=100, free_mb=40)

    snapshot = take_snapshot([Probe("pynvml", reader)])
    assert (snapshot.gpu_index, snapshot.vram_used_mb) == (2, 60)
