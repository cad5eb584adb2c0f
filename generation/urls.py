from django.urls import path

from generation import deliverable_views

app_name = "deliverables"

urlpatterns = [
    path("briefs/<uuid:brief_uuid>/deliverables/", deliverable_views.brief_deliverables_view, name="brief"),
    path(
        "deliverables/<uuid:deliverable_uuid>/download/",
        deliverable_views.deliverable_download,
        name="download",
    ),
]
