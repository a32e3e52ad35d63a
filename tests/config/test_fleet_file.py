"""fleet.yaml: inventory ids follow the telemetry id rules, errors carry file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from chargewatch.config.fleet_file import load_fleet, tariff_reference_problems
from chargewatch.core.errors import ConfigError

FLEET = """sites:
  - {{id: depot, timezone: Europe/Oslo}}
chargers:
  - {{id: CP-0001, site: depot}}
  - {{id: {bad}, site: depot}}
"""


@pytest.mark.parametrize(
    "bad", ['"EVIL/#"', '"CP 7"', '"CP1\\n"', '"Ā-1"', '""', '"' + "x" * 65 + '"']
)
def test_a_charger_id_that_telemetry_could_never_carry_is_refused(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET.format(bad=bad), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_fleet(path)
    (problem,) = caught.value.problems
    assert (problem.line, problem.path) == (5, "chargers[1].id")
    assert "a charger id: 1 to 64 ASCII letters" in problem.message
    assert str(problem).startswith(f"{path}:5:")


def test_ids_of_the_safe_alphabet_load(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET.format(bad="site-a_01.ocpp:2"), encoding="utf-8")
    assert set(load_fleet(path).chargers) == {"CP-0001", "site-a_01.ocpp:2"}


SITES = """sites:
  - {id: plaza}
  - {id: home-12, kind: residential}
  - {id: yard, kind: DEPOT}
  - {id: lot, kind: [public]}
chargers: []
"""


def test_site_kind_defaults_to_public_and_a_bad_kind_is_refused_with_its_place(
    tmp_path: Path,
) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(SITES, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_fleet(path)
    problems = caught.value.problems
    assert [(p.line, p.column, p.path) for p in problems] == [
        (4, 22, "sites[2].kind"),
        (5, 21, "sites[3].kind"),
    ]
    assert all("a site kind: public, depot, residential" in p.message for p in problems)
    path.write_text(SITES.replace("DEPOT", "depot").replace("[public]", "workplace"))
    fleet = load_fleet(path)
    assert {s.id: s.kind for s in fleet.sites.values()} == {
        "plaza": "public",
        "home-12": "residential",
        "yard": "depot",
        "lot": "workplace",
    }


REFS = """sites:
  - {id: depot, timezone: Europe/Oslo, tariff: flat-energy}
  - {id: mall, tariff: flat-enrgy}
chargers:
  - {id: CP-0001, site: depot}
  - {id: CP-0002, site: mall, tariff: dc-fats}
"""


def test_unknown_tariff_ids_are_reported_with_file_line_and_key_path(tmp_path: Path) -> None:
    """Issue #18: a typo in a tariff id left its sessions unpriced without a word."""
    path = tmp_path / "fleet.yaml"
    path.write_text(REFS, encoding="utf-8")
    problems = tariff_reference_problems(load_fleet(path), {"flat-energy", "dc-fast"})
    where = [(p.line, p.path) for p in problems]
    assert where == [(3, "sites[1].tariff"), (6, "chargers[1].tariff")]
    assert str(problems[0]).startswith(f"{path}:3:")
    assert "unknown tariff 'flat-enrgy'; loaded: dc-fast, flat-energy" in problems[0].message
    every = {"flat-energy", "flat-enrgy", "dc-fats"}
    assert tariff_reference_problems(load_fleet(path), every) == []


def test_an_unknown_site_fails_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(REFS.replace("site: mall", "site: mal"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_fleet(path)
    (problem,) = caught.value.problems
    assert (problem.line, problem.path) == (6, "chargers[1].site")
