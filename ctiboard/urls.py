from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from ctiboard.ops import views as ops_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Django's set_language view: the board's language switcher posts here.
    path("i18n/", include("django.conf.urls.i18n")),
    path("readyz", ops_views.readyz, name="readyz"),
    path("metrics", ops_views.metrics, name="metrics"),
    path("t/<str:account>/history/", include("ctiboard.history.urls")),
    path("", include("ctiboard.board.urls")),
]
