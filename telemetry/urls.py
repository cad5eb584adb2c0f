from django.urls import path

from telemetry import views

app_name = "telemetry"

urlpatterns = [
    path("runs/<uuid:batch_uuid>/summary.txt", views.run_summary, name="run-summary"),
    path("runs/<uuid:batch_uuid>/metadata.json", views.run_metadata, name="run-metadata"),
]
