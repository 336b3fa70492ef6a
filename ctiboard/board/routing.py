from django.urls import path

from .consumers import BoardConsumer

websocket_urlpatterns = [
    path("ws/board/<str:account>/", BoardConsumer.as_asgi()),
]
