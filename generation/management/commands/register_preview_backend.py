from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from generation.services import backend_register_preview


class Command(BaseCommand):
    help = "Register the storyboard preview server as a backend (the default when none is)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default=settings.PREVIEW_SERVER_URL)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            backend = backend_register_preview(url=options["url"])
        except ValidationError as refused:
            raise CommandError(" ".join(refused.messages)) from None
        default = " (default)" if backend.is_default else ""
        self.stdout.write(f"backend {backend.name!r} at {backend.base_url}{default}")
