"""The building directory: billing's list, cached, as the inspector sees it."""

from __future__ import annotations

from pydantic import SecretStr

from billing_client.base import BillingAuth
from billing_client.models import Building, BuildingList
from services.buildings import BuildingDirectory

AUTH = BillingAuth(login="uk", password=SecretStr("secret"))


class ListingBilling:
    """Answers GET /buildings with a fixed list (only what the directory calls)."""

    def __init__(self, buildings: list[Building]) -> None:
        self.listing = BuildingList(buildings=buildings)

    async def buildings(self, auth: BillingAuth) -> BuildingList:
        del auth
        return self.listing


def building(number: int, street: str = "Ленина ул.", address: str | None = None) -> Building:
    return Building(
        id=f"b-{number}",
        city="Казань",
        street=street,
        house=str(number),
        address=address or f"г. Казань, {street}, д. {number}",
    )


async def test_every_building_of_billing_is_found_with_its_fields() -> None:
    buildings = [building(n) for n in range(1, 21)] + [building(5, "Мира пр-т")]
    buildings[-1] = buildings[-1].model_copy(update={"id": "b-99"})
    directory = BuildingDirectory(ListingBilling(buildings))  # type: ignore[arg-type]

    for expected in buildings:
        assert await directory.get("acc", AUTH, expected.id) == expected
    assert await directory.search("acc", AUTH, "мира 5") == [buildings[-1]]
    page = await directory.page("acc", AUTH, 0)
    assert page.pages == 3
    assert [b.house for b in page.buildings] == ["1", "2", "3", "4", "5", "6", "7", "8"]


async def test_an_address_with_control_characters_is_listed_as_a_whole() -> None:
    # Regression guard: the directory packs billing's fields into one string.
    odd = building(7, address="д. 7\x1fкорпус\x1e2\x00")
    directory = BuildingDirectory(ListingBilling([odd, building(8)]))  # type: ignore[arg-type]

    found = await directory.get("acc", AUTH, "b-7")

    assert found is not None
    assert found.address == "д. 7 корпус 2\x00"
    assert await directory.get("acc", AUTH, "b-8") == building(8)


async def test_an_account_without_buildings_has_one_empty_page() -> None:
    directory = BuildingDirectory(ListingBilling([]))  # type: ignore[arg-type]

    page = await directory.page("acc", AUTH, 0)

    assert page.buildings == []
    assert page.pages == 1
    assert await directory.search("acc", AUTH, "ленина 1") == []
