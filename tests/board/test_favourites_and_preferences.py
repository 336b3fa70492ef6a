"""The star on each tile and the user's choices for his own ringing phone."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from ctiboard.board.models import BoardPreference, CrmOpen, Favourite
from tests.board.support import connect, login, tile_ids, tile_numbers
from tests.conftest import Company


def star(client: Client, company: Company, extension_id: int, data: dict | None = None, **kw):  # type: ignore[no-untyped-def]
    return client.post(
        reverse("favourite", args=[company.tenant.account]),
        {"extension": extension_id, **(data or {})},
        **kw,
    )


def test_star_pins_and_unpins(client: Client, owner: User, company: Company) -> None:
    login(client, owner)
    target = company.extensions[3]
    response = star(client, company, target.pk, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith('<div id="tiles"')
    assert tile_numbers(html)[0] == "103" and ">Favourites <" in html
    assert Favourite.objects.filter(user=owner, extension=target).exists()
    response = star(client, company, target.pk, headers={"HX-Request": "true"})
    assert tile_numbers(response.content.decode())[0] == "100"
    assert not Favourite.objects.exists()


def test_star_keeps_the_view_of_the_page(client: Client, owner: User, company: Company) -> None:
    login(client, owner)
    response = star(
        client,
        company,
        company.extensions[5].pk,
        {"q": "Person 5", "sort": "name"},
        headers={"HX-Request": "true"},
    )
    assert 'data-sort="name"' in response.content.decode()
    # Without JavaScript: back to the board with the same view in the URL.
    response = star(client, company, company.extensions[5].pk, {"q": "Person 5"})
    assert response.status_code == 302
    assert response["Location"] == reverse("board", args=[company.tenant.account]) + "?q=Person+5"


def test_favourites_are_per_user(
    client: Client, owner: User, member: User, company: Company
) -> None:
    Favourite.objects.create(user=owner, extension=company.extensions[2])
    html = login(client, member).get(reverse("board", args=[company.tenant.account])).content
    assert b"Favourites" not in html and b'aria-pressed="true"' not in html


def test_an_extension_out_of_sight_cannot_be_starred(
    client: Client, member: User, company: Company
) -> None:
    response = star(login(client, member), company, company.extensions[4].pk)
    assert response.status_code == 404 and not Favourite.objects.exists()


def test_star_anonymous_and_stranger(client: Client, stranger: User, company: Company) -> None:
    response = star(client, company, company.extensions[1].pk)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    response = star(login(client, stranger), company, company.extensions[1].pk)
    assert response.status_code == 404 and not Favourite.objects.exists()


def test_star_needs_post(client: Client, owner: User, company: Company) -> None:
    login(client, owner)
    url = reverse("favourite", args=[company.tenant.account])
    assert client.get(url, {"extension": company.extensions[1].pk}).status_code == 405


@pytest.mark.parametrize("extension", ["", "abc", "1.5"])
def test_star_without_an_extension_is_refused(
    client: Client, owner: User, company: Company, extension: str
) -> None:
    login(client, owner)
    response = client.post(
        reverse("favourite", args=[company.tenant.account]),
        {"extension": extension},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 400 and b"Choose an extension" in response.content
    assert not Favourite.objects.exists()


@pytest.mark.django_db(transaction=True)
async def test_a_star_redraws_the_users_other_boards(owner: User, company: Company) -> None:
    socket = await connect(owner, company.tenant.account)
    assert (await socket.connect())[0]
    await socket.receive_from()
    client = Client()
    await sync_to_async(login)(client, owner)
    await sync_to_async(star)(client, company, company.extensions[4].pk)
    grid = await socket.receive_from()
    assert 'id="tiles"' in grid and ">Favourites <" in grid
    assert len(tile_ids(grid)) == 6
    await socket.disconnect()


def test_preferences_are_saved(client: Client, owner: User, company: Company) -> None:
    login(client, owner)
    url = reverse("preferences", args=[company.tenant.account])
    response = client.post(
        url, {"notify": "on", "sound": "on", "crm_open": "answer"}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith('<form id="prefs"')
    assert "Saved." in html and "data-notify checked" in html
    pref = BoardPreference.objects.get(user=owner)
    assert (pref.notify, pref.sound, pref.crm_open) == (True, True, CrmOpen.ANSWER)
    client.post(url, {"crm_open": "click"}, headers={"HX-Request": "true"})
    pref.refresh_from_db()
    assert (pref.notify, pref.sound, pref.crm_open) == (False, False, CrmOpen.CLICK)


def test_invalid_preferences_are_refused(client: Client, owner: User, company: Company) -> None:
    login(client, owner)
    response = client.post(
        reverse("preferences", args=[company.tenant.account]),
        {"crm_open": "always"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 400 and not BoardPreference.objects.exists()


def test_crm_choice_is_offered_only_with_a_crm_link(
    client: Client, owner: User, company: Company
) -> None:
    login(client, owner)
    url = reverse("board", args=[company.tenant.account])
    assert "Open the caller in the CRM" not in client.get(url).content.decode()
    company.tenant.crm_url_template = "https://crm.example/search?phone={number}"
    company.tenant.save()
    assert "Open the caller in the CRM" in client.get(url).content.decode()


def test_preferences_anonymous_and_stranger(
    client: Client, stranger: User, company: Company
) -> None:
    url = reverse("preferences", args=[company.tenant.account])
    response = client.post(url, {"crm_open": "click"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert login(client, stranger).post(url, {"crm_open": "click"}).status_code == 404
    assert not BoardPreference.objects.exists()
