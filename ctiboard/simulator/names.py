"""Deterministic, plausible extension directories for simulated tenants."""

import random

# A German cloud PBX: mostly German names, some English ones, as in a typical NFON customer.
FIRST_NAMES = (
    "Anna", "Lena", "Lea", "Hannah", "Mia", "Sophie", "Laura", "Julia", "Katharina", "Sabine",
    "Petra", "Claudia", "Monika", "Ursula", "Birgit", "Jana", "Nina", "Sarah", "Lisa", "Marie",
    "Lukas", "Leon", "Jonas", "Felix", "Maximilian", "Paul", "Elias", "Finn", "Tobias", "Stefan",
    "Thomas", "Michael", "Andreas", "Markus", "Jürgen", "Klaus", "Uwe", "Matthias", "Florian",
    "Sebastian", "Jörg", "Björn", "Emily", "Olivia", "Charlotte", "Grace", "James", "Oliver",
    "Harry", "George", "Jack", "William", "Daniel", "David",
)  # fmt: skip
LAST_NAMES = (
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
    "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann",
    "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann", "Hartmann", "Lange", "Schmitt",
    "Werner", "Schmitz", "Krause", "Meier", "Lehmann", "Schmid", "Schulze", "Maier", "Köhler",
    "Herrmann", "König", "Walter", "Huber", "Kaiser", "Fuchs", "Peters", "Lang", "Scholz",
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Evans",
    "Thomas", "Roberts", "Walker",
)  # fmt: skip
# Shared extensions that real PBXs carry beside the people.
FUNCTION_NAMES = ("Empfang", "Zentrale", "Support", "Vertrieb", "Buchhaltung", "Lager", "Konferenz")


def extension_numbers(count: int) -> list[str]:
    """``count`` consecutive numbers of the shortest width (at least three digits) that fits."""
    digits = 3
    while 10 ** (digits - 1) + count > 10**digits:
        digits += 1
    first = 10 ** (digits - 1)
    return [str(first + index) for index in range(count)]


def generate_directory(count: int, rng: random.Random) -> list[tuple[str, str]]:
    """``count`` (number, name) pairs; the same ``rng`` state gives the same directory."""
    directory = []
    # Names repeat across thousands of extensions; share one string per distinct name.
    names: dict[str, str] = {}
    for number in extension_numbers(count):
        # Draw every value every time so the sequence does not depend on which branch is taken.
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        function, is_function = rng.choice(FUNCTION_NAMES), rng.random() < 0.03
        name = function if is_function else f"{first} {last}"
        directory.append((number, names.setdefault(name, name)))
    return directory
