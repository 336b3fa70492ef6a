"""Logging in to a running server through its form, as a browser does."""

import httpx


def form_login(url: str, username: str, password: str) -> str:
    """The session cookie of a real login through the form, CSRF token and all."""
    with httpx.Client(base_url=url, timeout=10) as client:
        client.get("/login/").raise_for_status()
        response = client.post(
            "/login/?next=/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": client.cookies["csrftoken"],
            },
        )
        assert response.status_code == 302, response.text
        return str(client.cookies["sessionid"])
