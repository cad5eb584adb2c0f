"""GET /health/: database, broker and backends, for load balancers and people.

Backend states come from the periodic check (Celery beat), so a monitor that
polls this page never adds load to the GPU servers. Under `./studio run` the page
also lists the studio's own processes, with their restarts, from the supervisor's
status file.
"""

from pathlib import Path

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from generation.models import Backend
from storycore.supervisor import read_status


def _database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": exc.__class__.__name__}


def _broker() -> dict:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
        return {"ok": True}
    except redis.RedisError as exc:
        return {"ok": False, "error": exc.__class__.__name__}
    finally:
        client.close()


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    database = _database()
    broker = _broker()
    backends = []
    if database["ok"]:
        for backend in Backend.objects.filter(enabled=True).order_by("name"):
            backends.append(
                {
                    "name": backend.name,
                    "kind": backend.kind,
                    "state": backend.health_state,
                    "checked_at": backend.health_checked_at.isoformat()
                    if backend.health_checked_at
                    else None,
                }
            )
    any_backend_up = any(b["state"] == "healthy" for b in backends)
    ok = database["ok"] and broker["ok"]
    supervised = read_status(Path(settings.VAR_DIR) / "run" / "processes.json")
    processes = supervised["processes"] if supervised else None
    all_running = processes is None or all(p["state"] == "running" for p in processes)
    body = {
        "status": "ok" if ok and any_backend_up and all_running else ("degraded" if ok else "down"),
        "database": database,
        "broker": broker,
        "backends": backends,
    }
    if processes is not None:
        body["processes"] = [
            {key: p[key] for key in ("name", "state", "restarts", "last_exit_status", "last_exit_at")}
            for p in processes
        ]
    return JsonResponse(body, status=200 if ok else 503)
