from django.urls import path

from briefs import board_views, list_views, outline_views, take_views, views

app_name = "briefs"

urlpatterns = [
    path("", list_views.brief_list, name="list"),
    path("briefs/from-idea/", list_views.brief_from_idea, name="from-idea"),
    path("teams/current/", list_views.team_current, name="team-current"),
    path(
        "invitations/<uuid:invitation_uuid>/accept/", list_views.invitation_accept, name="invitation-accept"
    ),
    path(
        "invitations/<uuid:invitation_uuid>/decline/",
        list_views.invitation_decline,
        name="invitation-decline",
    ),
    path("briefs/<uuid:brief_uuid>/outline/", outline_views.outline_retry, name="outline-retry"),
    path("briefs/<uuid:brief_uuid>/refine/", outline_views.outline_refine, name="outline-refine"),
    path("outlines/<uuid:request_uuid>/", outline_views.outline_status, name="outline-status"),
    path("briefs/<uuid:brief_uuid>/", views.brief_detail, name="detail"),
    path("briefs/<uuid:brief_uuid>/scenes/", views.scene_create, name="scene-create"),
    path("briefs/<uuid:brief_uuid>/render/", views.brief_render, name="render"),
    path("briefs/<uuid:brief_uuid>/characters/", views.character_create, name="character-create"),
    path("characters/<uuid:character_uuid>/delete/", views.character_delete, name="character-delete"),
    path("scenes/<uuid:scene_uuid>/", views.scene_update, name="scene-update"),
    path("scenes/<uuid:scene_uuid>/delete/", views.scene_delete, name="scene-delete"),
    path("scenes/<uuid:scene_uuid>/restore/", views.scene_restore, name="scene-restore"),
    path("scenes/<uuid:scene_uuid>/move/", views.scene_move, name="scene-move"),
    path("scenes/<uuid:scene_uuid>/duplicate/", views.scene_duplicate, name="scene-duplicate"),
    path("scenes/<uuid:scene_uuid>/render/", views.scene_render, name="scene-render"),
    path("scenes/<uuid:scene_uuid>/card/", board_views.scene_card, name="scene-card"),
    path("briefs/<uuid:brief_uuid>/board/", board_views.board, name="board"),
    path("briefs/<uuid:brief_uuid>/runs/", board_views.runs, name="runs"),
    path("briefs/<uuid:brief_uuid>/save/", board_views.brief_save, name="brief-save"),
    path("characters/<uuid:character_uuid>/", board_views.character_save, name="character-save"),
    path("scenes/<uuid:scene_uuid>/final/", take_views.scene_final, name="scene-final"),
    path("takes/<uuid:take_uuid>/again/", take_views.take_again, name="take-again"),
    path("takes/<uuid:take_uuid>/restore/", take_views.take_restore, name="take-restore"),
    path("briefs/<uuid:brief_uuid>/compare/", take_views.takes_compare, name="takes-compare"),
    path("briefs/<uuid:brief_uuid>/review/", take_views.brief_review, name="review"),
    path("briefs/<uuid:brief_uuid>/eta/", take_views.brief_eta_view, name="eta"),
    path("jobs/<uuid:job_uuid>/cancel/", views.job_cancel, name="job-cancel"),
    path("artifacts/<uuid:artifact_uuid>/", views.artifact_file, name="artifact"),
    path("scenes/<uuid:scene_uuid>/input-image/", views.scene_input_image, name="scene-input-image"),
    path("briefs/<uuid:brief_uuid>/reference-image/", views.brief_reference_image, name="reference-image"),
]
