"""Included under ``t/<account>/history/`` (ctiboard/urls.py)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.history, name="history"),
    path("calls.csv", views.history_csv, name="history_csv"),
    path("analytics/", views.analytics, name="analytics"),
]
