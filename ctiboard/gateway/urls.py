from django.urls import path

from . import api, views

# Mounted at cti/<account>/v1/ (ctiboard/urls.py): NFON's paths under its base URL.
api_urlpatterns = [
    path("login", api.login, name="gateway_login"),
    path("extensions/phone/data", api.data, name="gateway_data"),
    path("extensions/phone/states", api.states, name="gateway_states"),
    path("extensions/phone/calls", api.calls, name="gateway_calls"),
    path("extensions/phone/calls/<str:call_uuid>", api.cancel, name="gateway_cancel"),
]

# Mounted at t/<account>/tokens/: the user's own API tokens.
token_urlpatterns = [
    path("", views.tokens, name="api_tokens"),
    path("<int:token_id>/revoke/", views.revoke, name="api_token_revoke"),
]
