"""`./studio run`: the whole embedded studio from one command.

Prepares the database and demo data, then starts every process of the embedded
default — Valkey, the storyboard preview server, the render watcher, a Celery
worker and beat, the ASGI server — and keeps them running (storycore.supervisor).
Ctrl-C (or SIGTERM) stops them all, newest first.

`--check` is the smoke test of a fresh machine: it starts the same processes in a
throwaway folder on free ports, renders the demo brief on the preview server,
checks every image, stops, and exits 0 only when all of that worked.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

from storycore.supervisor import ProcessSpec, StartFailure, Supervisor, Terminal
from storycore.valkey import valkey_server_argv

BASE_DIR = Path(__file__).resolve().parent.parent
# Lines of a failing process's log shown in the terminal.
FAILURE_TAIL_LINES = 40


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _manage(*args: str, env: dict[str, str]) -> str:
    """Run a management command; its output is shown only when it fails."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"manage.py {' '.join(args)} failed with status {done.returncode}:\n{done.stdout}{done.stderr}"
        )
    return done.stdout


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="./studio run", description="Run the whole studio on this machine.")
    parser.add_argument(
        "--check",
        action="store_true",
        help="start everything in a throwaway folder, render the demo brief, check it, stop",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show every process's output, not only warnings and errors"
    )
    return parser.parse_args(argv)


def _prepare_check_environment() -> Path:
    """A fresh folder and free ports, so the check never touches a studio that is already running."""
    var_dir = Path(tempfile.mkdtemp(prefix="storycore-check-"))
    os.environ["STORYCORE_VAR_DIR"] = str(var_dir)
    for name in ("STUDIO_PORT", "PREVIEW_SERVER_PORT", "EMBEDDED_VALKEY_PORT", "LOCAL_RUNPOD_PORT"):
        os.environ[name] = str(_free_port())
    for name in ("REDIS_URL", "DATABASE_URL", "PREVIEW_SERVER_URL", "MEDIA_ROOT", "STATIC_ROOT"):
        os.environ.pop(name, None)
    return var_dir


def studio_processes(*, host: str, web_port: int, var_dir: Path, embedded_valkey: bool) -> list[ProcessSpec]:
    from django.conf import settings

    bin_dir = Path(sys.executable).parent
    python = sys.executable
    specs = []
    if embedded_valkey:
        specs.append(
            ProcessSpec(
                "embedded Valkey",
                valkey_server_argv(port=settings.EMBEDDED_VALKEY_PORT, data_dir=var_dir / "valkey"),
                port=settings.EMBEDDED_VALKEY_PORT,
                # Overcommit matters to background saves, and this broker never saves.
                quiet=("Memory overcommit must be enabled",),
            )
        )
    specs.append(
        ProcessSpec(
            "preview server",
            # latent2rgb: the demo's cards show a render's preview frames before its final image.
            [
                python,
                "manage.py",
                "preview_server",
                "--port",
                str(settings.PREVIEW_SERVER_PORT),
                "--preview-method",
                "latent2rgb",
            ],
            port=settings.PREVIEW_SERVER_PORT,
        )
    )
    if settings.LOCAL_RUNPOD:
        specs.append(
            ProcessSpec(
                "local RunPod endpoint",
                [
                    python,
                    "manage.py",
                    "runpod_endpoint",
                    "--port",
                    str(settings.LOCAL_RUNPOD_PORT),
                    "--comfyui-url",
                    settings.PREVIEW_SERVER_URL,
                ],
                port=settings.LOCAL_RUNPOD_PORT,
            )
        )
    celery = str(bin_dir / "celery")
    specs += [
        ProcessSpec(
            "render watcher", [python, "manage.py", "render_watcher"], ready_line="render watcher started"
        ),
        ProcessSpec(
            "Celery worker",
            [
                celery,
                "-A",
                "storycore",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                os.environ.get("CELERY_CONCURRENCY", "2"),
            ],
            ready_line=r" ready\.",
            # Celery's advice against running as root: every process of the studio runs as the
            # person who started it, by design.
            env={"PYTHONWARNINGS": "ignore:You're running the worker with superuser privileges"},
        ),
        ProcessSpec(
            "Celery beat",
            [celery, "-A", "storycore", "beat", "--loglevel", "INFO"],
            ready_line="beat: Starting",
        ),
        ProcessSpec(
            "ASGI server",
            [str(bin_dir / "uvicorn"), "storycore.asgi:application", "--host", host, "--port", str(web_port)],
            port=web_port,
        ),
    ]
    return specs


def _show_failure(terminal: Terminal, name: str, reason: str, tail: list[str], log: Path | None) -> None:
    terminal.say(f"\n{name} {reason}." + (f" Its last lines (all of them in {log}):" if log else ""))
    for line in tail[-FAILURE_TAIL_LINES:]:
        terminal.say(f"  | {line}")


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    check_dir = _prepare_check_environment() if args.check else None
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storycore.settings")
    import django

    django.setup()
    from django.conf import settings

    # This process's own requests (the check's) are not news; its processes' logs are in their files.
    logging.getLogger().setLevel(logging.WARNING)
    from storycore.env import secret_key_from

    web_port = int(os.environ.get("STUDIO_PORT", "8000"))
    host = os.environ.get("STUDIO_HOST", "127.0.0.1")
    embedded_valkey = "REDIS_URL" not in os.environ
    env = dict(os.environ, PYTHONUNBUFFERED="1", REDIS_URL=settings.REDIS_URL)
    var_dir = Path(settings.VAR_DIR)
    var_dir.mkdir(parents=True, exist_ok=True)
    terminal = Terminal(verbose=args.verbose)

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

    supervisor = Supervisor(
        cwd=BASE_DIR,
        env=env,
        log_dir=var_dir / "log",
        status_path=var_dir / "run" / "processes.json",
        terminal=terminal,
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # Both explicitly: a shell that starts us in the background leaves SIGINT ignored.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 1
    try:
        terminal.say("Preparing the database …")
        _manage("migrate", "--no-input", "-v", "0", env=env)
        _manage("load_workflows", env=env)
        _manage("register_preview_backend", "--url", settings.PREVIEW_SERVER_URL, env=env)
        if settings.LOCAL_RUNPOD:
            _manage("register_local_runpod", env=env)
        terminal.say(f"Starting the studio (logs in {supervisor.log_dir}) …")
        supervisor.start_all(
            studio_processes(host=host, web_port=web_port, var_dir=var_dir, embedded_valkey=embedded_valkey)
        )
        login = dict(line.split(": ", 1) for line in _manage("seed_demo", env=env).strip().splitlines())
        url = f"http://{host}:{web_port}"
        terminal.release()
        terminal.say(_banner(url, login))
        if args.check:
            from storycore.smoke import check_demo_render

            problems = check_demo_render(
                web_url=url,
                token=login["API token"],
                brief_path=login["demo brief"],
                say=terminal.say,
                supervisor=supervisor,
            )
            for name, reason, tail, log in problems:
                _show_failure(terminal, name, reason, tail, log)
            code = 1 if problems else 0
            terminal.say("The check passed." if code == 0 else "The check FAILED.")
            return code
        supervisor.watch(threading.Event())
        return 0
    except KeyboardInterrupt:
        code = 0
        return 0
    except StartFailure as failure:
        log = supervisor.child(failure.name).log_path
        terminal.release()
        _show_failure(terminal, failure.name, failure.reason, failure.tail, log)
        terminal.say("The studio could not start.")
        return 1
    except RuntimeError as exc:
        terminal.release()
        terminal.say(f"\nThe studio could not start: {exc}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        terminal.say("\nStopping the studio …")
        supervisor.stop()
        terminal.say("Every studio process has stopped.")
        if check_dir is not None:
            if code == 0:
                shutil.rmtree(check_dir, ignore_errors=True)
            else:
                terminal.say(f"The check's files and logs are kept in {check_dir}.")


def _banner(url: str, login: dict[str, str]) -> str:
    from django.conf import settings

    preview_url = settings.PREVIEW_SERVER_URL
    lines = [
        "",
        "StoryCore render studio is running.",
        f"  Editor        {url}/",
        f"  Demo brief    {url}{login['demo brief']}",
        f"  Admin         {url}/admin/",
        f"  API docs      {url}/api/docs/",
        f"  Health        {url}/health/",
        f"  Preview server (ComfyUI-compatible)  {preview_url}",
    ]
    if settings.LOCAL_RUNPOD:
        lines.append(f"  Local RunPod endpoint  http://127.0.0.1:{settings.LOCAL_RUNPOD_PORT}/v2")
    lines += [
        f"  Staff login   {login['staff login']}",
        f"  API token     {login['API token']}",
        "Press Ctrl-C to stop every process.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
