"""`./studio run --check`: render the demo brief through the running studio's own API and
check every image that comes back, the way a new user's first render would go."""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from generation.artifact_check import inspect_output
from generation.providers.base import ProviderError
from storycore.supervisor import ProcessState, Supervisor

RENDER_TIMEOUT_SECONDS = 180.0
TERMINAL_STATES = {"succeeded", "failed", "cancelled"}
# Where to look first when a render fails without any process dying.
RENDER_PATH = ("render watcher", "Celery worker", "preview server")

Problem = tuple[str, str, list[str], Path | None]


def check_demo_render(
    *, web_url: str, token: str, brief_path: str, say: Callable[[str], None], supervisor: Supervisor
) -> list[Problem]:
    problems: list[Problem] = []
    brief_uuid = brief_path.rstrip("/").rsplit("/", 1)[-1]
    headers = {"Authorization": f"Token {token}"}
    with httpx.Client(base_url=web_url, headers=headers, timeout=30) as api:
        health = api.get("/health/")
        if health.status_code != 200:
            problems.append(
                ("health", f"/health/ answered {health.status_code}: {health.text[:300]}", [], None)
            )
        say("Rendering the demo brief on the preview server …")
        submitted = api.post(f"/api/v1/briefs/{brief_uuid}/renders/", json={})
        if submitted.status_code != 202:
            problems.append(
                ("render", f"POST renders answered {submitted.status_code}: {submitted.text[:300]}", [], None)
            )
            return problems + _process_problems(supervisor)
        jobs = {job["uuid"]: job for job in submitted.json()["jobs"]}
        deadline = time.monotonic() + RENDER_TIMEOUT_SECONDS
        reported = ""
        while True:
            for uuid in jobs:
                if jobs[uuid]["state"] not in TERMINAL_STATES:
                    jobs[uuid] = api.get(f"/api/v1/jobs/{uuid}/").json()
            done = sum(job["state"] in TERMINAL_STATES for job in jobs.values())
            line = f"  {done} of {len(jobs)} scenes finished"
            if line != reported:
                say(line)
                reported = line
            if done == len(jobs) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for job in sorted(jobs.values(), key=lambda j: j["created_at"]):
            if job["state"] != "succeeded":
                if job["state"] in TERMINAL_STATES:
                    reason = f"ended {job['state']}"
                else:
                    reason = f"was still {job['state']} after {RENDER_TIMEOUT_SECONDS:.0f} s"
                if job.get("error_code"):
                    reason += f" ({job['error_code']}: {job['error_message']})"
                problems.append((f"job {job['uuid']}", reason, [], None))
                continue
            if not job["artifacts"]:
                problems.append((f"job {job['uuid']}", "succeeded with no artifact", [], None))
            for artifact in job["artifacts"]:
                problem = _check_artifact(api, artifact)
                if problem:
                    problems.append((f"artifact {artifact['uuid']}", problem, [], None))
                else:
                    size = f"{artifact['width']}x{artifact['height']} " if artifact["width"] else ""
                    say(
                        f"  ok: {size}{artifact['content_type']}, "
                        f"{artifact['size_bytes']} bytes, sha256 {artifact['sha256'][:12]}…"
                    )
    found = _process_problems(supervisor)
    if problems and not found:
        # Nothing died, yet a render failed: show the render path's own logs.
        found = [
            (name, "was on the failed render's path", list(child.tail), child.log_path)
            for name in RENDER_PATH
            if (child := supervisor.child(name))
        ]
    return problems + found


def _check_artifact(api: httpx.Client, artifact: dict) -> str | None:
    answer = api.get(artifact["download_url"])
    if answer.status_code != 200:
        return f"download answered {answer.status_code}"
    body = answer.content
    if len(body) != artifact["size_bytes"]:
        return f"download has {len(body)} bytes, the record says {artifact['size_bytes']}"
    if hashlib.sha256(body).hexdigest() != artifact["sha256"]:
        return "download does not match the recorded sha256"
    kind = artifact.get("kind", "image")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "output"
        path.write_bytes(body)
        try:
            facts = inspect_output(path, max_pixels=1 << 30, label=f"artifact {artifact['uuid']}", hint=kind)
        except ProviderError as exc:
            return exc.message
    if facts.kind != kind:
        return f"the download is a {facts.kind} output, the record says {kind}"
    if (facts.width, facts.height) != (artifact["width"], artifact["height"]):
        return f"the {kind} is {facts.width}x{facts.height}, the record says {artifact['width']}x{artifact['height']}"
    return None


def _process_problems(supervisor: Supervisor) -> list[Problem]:
    """Every process that died while the check ran, with its last lines."""
    supervisor.tend()
    return [
        (
            child.spec.name,
            f"died during the check (exit status {child.last_exit_status})",
            list(child.tail),
            child.log_path,
        )
        for child in supervisor.children
        if child.restarts or child.state != ProcessState.RUNNING
    ]
