"""`manage.py runpod_endpoint`: a local RunPod-compatible serverless endpoint (worker-comfyui)."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from generation.bundled_backends.runpod_endpoint import EndpointSettings, S3Target, run_endpoint


class Command(BaseCommand):
    help = (
        "Serve RunPod's serverless API for one endpoint on this machine, running each job like the "
        "worker-comfyui image against a ComfyUI-compatible server. Images come back as base64, or as "
        "S3 URLs when BUCKET_ENDPOINT_URL, BUCKET_ACCESS_KEY_ID and BUCKET_SECRET_ACCESS_KEY are set."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.LOCAL_RUNPOD_PORT)
        parser.add_argument("--comfyui-url", default=settings.PREVIEW_SERVER_URL)
        parser.add_argument("--endpoint-id", default=settings.LOCAL_RUNPOD_ENDPOINT_ID)
        parser.add_argument(
            "--api-key-env",
            default="RUNPOD_LOCAL_API_KEY",
            help="name of the environment variable holding the API key requests must carry",
        )
        parser.add_argument("--workers", type=int, default=1, help="jobs run at once")
        parser.add_argument(
            "--execution-timeout", type=float, default=600.0, help="seconds (policy may lower)"
        )
        parser.add_argument("--result-retention", type=float, default=1800.0, help="seconds results are kept")
        parser.add_argument(
            "--test-knobs", action="store_true", help="serve /_test/ to script failures (tests only)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        api_key = os.environ.get(options["api_key_env"], "")
        if not api_key:
            raise CommandError(f"set the API key in the environment variable {options['api_key_env']}")
        run_endpoint(
            options["host"],
            options["port"],
            EndpointSettings(
                comfyui_url=options["comfyui_url"],
                api_key=api_key,
                endpoint_id=options["endpoint_id"],
                workers=options["workers"],
                execution_timeout_ms=int(options["execution_timeout"] * 1000),
                result_retention_s=options["result_retention"],
                s3=S3Target.from_env(),
                test_knobs=options["test_knobs"],
            ),
        )
