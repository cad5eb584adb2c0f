from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from generation.services import backend_register_local_runpod


class Command(BaseCommand):
    help = "Register the local RunPod-compatible endpoint as a backend (its key read from a variable)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default=f"http://127.0.0.1:{settings.LOCAL_RUNPOD_PORT}/v2")
        parser.add_argument("--endpoint-id", default=settings.LOCAL_RUNPOD_ENDPOINT_ID)
        parser.add_argument("--api-key-env", default="RUNPOD_LOCAL_API_KEY")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            backend = backend_register_local_runpod(
                url=options["url"], endpoint_id=options["endpoint_id"], api_key_env=options["api_key_env"]
            )
        except ValidationError as refused:
            raise CommandError(" ".join(refused.messages)) from None
        self.stdout.write(f"backend {backend.name!r} at {backend.base_url}, endpoint {backend.endpoint_id}")
