from django.db import migrations


def create_presets(apps, schema_editor):
    QueuePolicy = apps.get_model("generation", "QueuePolicy")
    QueuePolicy.objects.get_or_create(
        name="Fast iteration",
        defaults={
            "description": "Short waits for quick drafts: give up early and do not retry.",
            "max_wait_s": 120,
            "poll_interval_s": 0.5,
            "max_poll_attempts": 0,
            "post_execution_timeout_s": 10,
            "retry_budget": 0,
        },
    )


def remove_presets(apps, schema_editor):
    apps.get_model("generation", "QueuePolicy").objects.filter(name="Fast iteration").delete()


class Migration(migrations.Migration):
    dependencies = [("generation", "0003_dispatch_and_policies")]
    operations = [migrations.RunPython(create_presets, remove_presets)]
