"""`manage.py preview_server`: run the storyboard preview server (a ComfyUI stand-in)."""

from __future__ import annotations

import pathlib
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from generation.bundled_backends.preview_server import PreviewSettings, run_server
from generation.bundled_backends.preview_server.settings import PREVIEW_METHODS, template_catalogue


class Command(BaseCommand):
    help = "Run the storyboard preview server: ComfyUI's HTTP/WebSocket API, rendering storyboard frames."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.PREVIEW_SERVER_PORT)
        parser.add_argument(
            "--data-dir", type=pathlib.Path, default=pathlib.Path(settings.VAR_DIR) / "preview"
        )
        parser.add_argument("--render-seconds", type=float, default=settings.PREVIEW_RENDER_SECONDS)
        parser.add_argument("--preview-method", choices=PREVIEW_METHODS, default="none")
        parser.add_argument(
            "--stock",
            action="store_true",
            help="list only a stock ComfyUI's models and nodes, instead of everything workflows/ needs",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # By default the server lists every model and node pack the shipped
        # templates use, so each of them renders in the embedded studio.
        catalogue: dict[str, Any] = {} if options["stock"] else template_catalogue()
        preview_settings = PreviewSettings(
            data_dir=options["data_dir"],
            render_seconds=options["render_seconds"],
            preview_method=options["preview_method"],
            **catalogue,
        )
        run_server(options["host"], options["port"], preview_settings)
