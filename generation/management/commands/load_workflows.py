from typing import Any

from django.core.management.base import BaseCommand, CommandError

from generation.services import workflow_templates_sync


class Command(BaseCommand):
    help = "Load the workflow templates in workflows/ into the database (new and changed files)."

    def handle(self, *args: Any, **options: Any) -> None:
        templates, errors = workflow_templates_sync()
        for template in templates:
            self.stdout.write(f"loaded {template.slug} v{template.version}")
        for error in errors:
            self.stderr.write(self.style.ERROR(error))
        if errors:
            raise CommandError(f"{len(errors)} workflow file(s) could not be loaded")
