from __future__ import annotations

from django.urls import path

from example_project.demo import views

app_name = "demo"

urlpatterns = [
    path("run/", views.run_workflow, name="run"),
    path("run-async/", views.run_workflow_async, name="run-async"),
]
