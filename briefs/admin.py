from django.contrib import admin

from briefs.models import Brief, Scene, Team


class SceneInline(admin.TabularInline):
    model = Scene
    fields = ["position", "title", "prompt", "seed", "input_image", "version"]
    readonly_fields = ["version"]
    extra = 0


@admin.register(Brief)
class BriefAdmin(admin.ModelAdmin):
    list_display = ["title", "team", "template", "scene_count", "created_by", "updated_at"]
    list_filter = ["team", "created_at"]
    search_fields = ["title", "idea", "uuid"]
    readonly_fields = ["uuid", "event_seq", "created_at", "updated_at"]
    inlines = [SceneInline]

    @admin.display(description="Scenes")
    def scene_count(self, brief: Brief) -> int:
        return brief.scenes.count()


@admin.register(Scene)
class SceneAdmin(admin.ModelAdmin):
    list_display = ["title", "brief", "position", "version", "updated_at"]
    list_filter = ["brief"]
    search_fields = ["title", "prompt", "uuid", "brief__title"]
    readonly_fields = ["uuid", "version", "created_at", "updated_at"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    filter_horizontal = ["members"]
