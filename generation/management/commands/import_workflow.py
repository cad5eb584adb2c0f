from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from generation.services import workflow_template_import
from generation.workflow_binding import TemplateError


class Command(BaseCommand):
    help = 'Import a workflow exported with ComfyUI\'s "Save (API)" as a template, detecting its bindings.'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="the exported API-format JSON")
        parser.add_argument("--name", required=True)
        parser.add_argument("--slug", default="")
        parser.add_argument("--description", default="")
        parser.add_argument(
            "--bindings", type=Path, help="a JSON file of bindings, instead of detecting them"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            api_json = options["file"].read_text(encoding="utf-8")
            bindings_json = options["bindings"].read_text(encoding="utf-8") if options["bindings"] else ""
            template = workflow_template_import(
                name=options["name"],
                slug=options["slug"],
                description=options["description"],
                api_json=api_json,
                bindings_json=bindings_json,
            )
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read the file: {exc}") from exc
        except TemplateError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"imported {template.slug} v{template.version}")
        for parameter, targets in template.bindings.items():
            where = ", ".join(f"node {t['node']}.{t['input']}" for t in targets)
            self.stdout.write(f"  {parameter} -> {where}")
