from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("t/<str:account>/", views.board, name="board"),
    path("t/<str:account>/call/", views.start_call, name="call"),
    path("t/<str:account>/dial/", views.dial, name="dial"),
    path("t/<str:account>/call/<int:attempt_id>/cancel/", views.cancel_call, name="cancel_call"),
    path("t/<str:account>/favourites/", views.favourite, name="favourite"),
    path("t/<str:account>/preferences/", views.preferences, name="preferences"),
]
