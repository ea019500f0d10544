from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

# The demo's login page says the demo user and password (only here: never in ag2_logging itself).
admin.site.login_template = "demo/login.html"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("demo/", include("example_project.demo.urls")),
]
