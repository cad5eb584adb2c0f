import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storycore.settings")

app = Celery("storycore")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
