from __future__ import annotations

from django.contrib import admin
from django.urls import path

from tests import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("sync/", views.sync_view),
    path("async/", views.async_view),
    path("class/", views.ClassView.as_view()),
    path("mw/sync/", views.mw_sync),
    path("mw/async/", views.mw_async, name="mw-async"),
    path("mw/nested/", views.mw_nested),
    path("plain/", views.plain),
    path("api/plain/", views.plain),
    path("mw/stream/", views.mw_stream),
    path("mw/astream/", views.mw_astream),
    path("deco/stream/", views.deco_stream),
    path("deco/astream/", views.deco_astream),
]
