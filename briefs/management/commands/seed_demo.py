from typing import Any

from django.core.management.base import BaseCommand

from briefs.demo import demo_seed


class Command(BaseCommand):
    help = (
        "Create the demo staff user, API token and demo brief (three scenes) if missing, and print the login."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        login = demo_seed()
        self.stdout.write(f"demo brief: /briefs/{login.brief_uuid}/")
        self.stdout.write(f"staff login: {login.username} / {login.password}")
        self.stdout.write(f"API token: {login.api_token}")
