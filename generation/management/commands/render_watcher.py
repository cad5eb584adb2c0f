from typing import Any

from django.core.management.base import BaseCommand

from generation.watcher import run_watcher


class Command(BaseCommand):
    help = "Follow every render on every backend (run exactly one per studio)."

    def handle(self, *args: Any, **options: Any) -> None:
        run_watcher()
