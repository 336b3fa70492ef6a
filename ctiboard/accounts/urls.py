from django.urls import path

from . import oidc_views, second_factor_views

urlpatterns = [
    path("sign-in/", oidc_views.SignInStart.as_view(), name="oidc_start"),
    path("sign-in/callback/", oidc_views.SignInCallback.as_view(), name="oidc_callback"),
    path("two-factor/", second_factor_views.two_factor, name="two_factor"),
]
