from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from ctiboard.accounts import login
from ctiboard.gateway.urls import api_urlpatterns, token_urlpatterns
from ctiboard.ops import views as ops_views

urlpatterns = [
    # Before the admin's own: the admin signs in on the login page, under its rules.
    path("admin/login/", login.admin_login),
    path("admin/", admin.site.urls),
    path("login/", login.LoginView.as_view(), name="login"),
    path("account/", include("ctiboard.accounts.urls")),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Django's set_language view: the board's language switcher posts here.
    path("i18n/", include("django.conf.urls.i18n")),
    path("readyz", ops_views.readyz, name="readyz"),
    path("metrics", ops_views.metrics, name="metrics"),
    path("t/<str:account>/history/", include("ctiboard.history.urls")),
    path("t/<str:account>/tokens/", include(token_urlpatterns)),
    # The CTI gateway: NFON's API per tenant (docs/gateway.md).
    path("cti/<str:account>/v1/", include(api_urlpatterns)),
    path("", include("ctiboard.board.urls")),
]
