"""docs/runbooks.md against the shipped rules (chargewatch's own, rules/, and the
collector's health alerts that Prometheus evaluates, deploy/prometheus/rules/):
every rule's `runbook_url` lands on a section of its own, and what a section
says about the rule (labels, `for:`, the detector parameters it quotes, the
commands sent) is what the rules and the detectors do today. The on-call
engineer reads this page at night; a runbook that names another `for:` or
threshold than the rule is worse than none."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from chargewatch.alerting.expr import parse_duration
from chargewatch.alerting.rule import Rule
from chargewatch.alerting.rulefmt import load_groups
from chargewatch.detectors.params import DetectorConfig

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / "docs" / "runbooks.md"
SELF_ALERTS = REPO / "deploy" / "prometheus" / "rules"
# Where the shipped rules point: the repository's own copy of this file.
URL = "https://github.com/chargewatch/chargewatch/blob/main/docs/runbooks.md#"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _sections(text: str) -> dict[str, str]:
    """Each `## ` section's body by its anchor."""
    out: dict[str, str] = {}
    for part in re.split(r"^## ", text, flags=re.M)[1:]:
        heading, _, body = part.partition("\n")
        anchor = _anchor(heading)
        assert anchor not in out, f"two sections with the anchor #{anchor}"
        out[anchor] = body
    return out


def _rules(rules_dir: Path) -> list[Rule]:
    return [r for g in load_groups([rules_dir]) for r in g.rules]


def _section_of(rule: Rule, sections: dict[str, str]) -> str:
    url = rule.annotations["runbook_url"].text
    assert url.startswith(URL), f"{rule.name}: runbook_url {url!r} is not docs/runbooks.md"
    anchor = url[len(URL) :]
    assert anchor in sections, f"{rule.name}: no section #{anchor} in docs/runbooks.md"
    return sections[anchor]


def _header(section: str) -> str:
    """The section's first line: the rule as shipped."""
    return section.strip().splitlines()[0]


@pytest.fixture(scope="module")
def sections() -> dict[str, str]:
    return _sections(RUNBOOKS.read_text(encoding="utf-8"))


def test_every_default_rule_links_a_section_about_itself(
    rules_dir: Path, sections: dict[str, str]
) -> None:
    anchors: dict[str, str] = {}
    for rule in _rules(rules_dir):
        section = _section_of(rule, sections)
        assert _header(section).startswith(f"**{rule.name}**"), rule.name
        anchor = rule.annotations["runbook_url"].text[len(URL) :]
        assert anchors.setdefault(anchor, rule.name) == rule.name, f"#{anchor} shared"


def test_no_section_holds_an_unrendered_template() -> None:
    # A template copied from a rule ("score {{ $value }}") means nothing to a reader.
    for anchor, body in _sections(RUNBOOKS.read_text(encoding="utf-8")).items():
        for token in ("{{", "}}", "$value", "$labels", "$signals", ".Value", ".Labels"):
            assert token not in body, f"#{anchor}: unrendered template {token!r}"


def test_each_section_names_its_rules_labels_severity_and_for(
    rules_dir: Path, sections: dict[str, str]
) -> None:
    for rule in _rules(rules_dir):
        section = _section_of(rule, sections)
        header = _header(section)
        for key, value in rule.labels.items():
            assert f"`{key}={value.text}`" in header, f"{rule.name}: label {key}={value.text}"
        # Every severity and `for:` the section states is the rule's: none stale.
        severities = re.findall(r"`severity=(\w+)`", section)
        assert severities, f"{rule.name}: no severity"
        assert set(severities) == {rule.labels["severity"].text}, rule.name
        holds = [parse_duration(d) for d in re.findall(r"`for: (\w+)`", section)]
        assert holds, f"{rule.name}: no `for:`"
        assert set(holds) == {rule.hold_s}, f"{rule.name}: for {holds} vs {rule.hold_s} s"
        keeps = [parse_duration(d) for d in re.findall(r"`keep_firing_for: (\w+)`", section)]
        assert set(keeps) == ({rule.keep_firing_for_s} if rule.keep_firing_for_s else set()), (
            rule.name
        )


def test_detector_parameters_quoted_are_the_detectors_defaults(
    rules_dir: Path, sections: dict[str, str]
) -> None:
    params = DetectorConfig().params()
    quoted = 0
    for rule in _rules(rules_dir):
        if "fault" not in rule.labels:
            continue
        fault = rule.labels["fault"].text
        defaults = {f.name: float(getattr(params[fault], f.name)) for f in fields(params[fault])}
        for name, value in re.findall(r"`(\w+)` = ([\d.]+)", _section_of(rule, sections)):
            assert name in defaults, f"{rule.name}: {name} is not a {fault} parameter"
            assert float(value) == defaults[name], f"{rule.name}: {name} = {value}"
            quoted += 1
        # Each detector section says what it fires on, in the detector's terms.
        assert re.search(r"`\w+` = [\d.]+", _section_of(rule, sections)), rule.name
    assert quoted >= 17


def test_remediation_commands_are_named_where_the_rule_sends_them(
    rules_dir: Path, sections: dict[str, str]
) -> None:
    with_actions = [r for r in _rules(rules_dir) if r.actions]
    assert with_actions
    for rule in with_actions:
        section = _section_of(rule, sections)
        for action in rule.actions:
            assert f"`{action.command}`" in section, f"{rule.name}: {action.command}"


def _self_alerts() -> list[dict[str, Any]]:
    """The collector's health alerts as Prometheus loads them (alerting rules only)."""
    return [
        r
        for path in sorted(SELF_ALERTS.glob("*.yml"))
        for g in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for r in g["rules"]
        if "alert" in r
    ]


def test_every_shipped_runbook_url_lands_on_its_own_section(
    rules_dir: Path, sections: dict[str, str]
) -> None:
    """Whatever rule file ships a `runbook_url`, its anchor is a section about that rule."""
    urls = [
        (r.name, r.annotations["runbook_url"].text)
        for r in _rules(rules_dir)
        if "runbook_url" in r.annotations
    ]
    urls += [
        (r["alert"], r["annotations"]["runbook_url"])
        for r in _self_alerts()
        if "runbook_url" in r.get("annotations", {})
    ]
    assert {name for name, _ in urls} >= {r["alert"] for r in _self_alerts()}
    owner: dict[str, str] = {}
    for name, url in urls:
        assert url.startswith(URL), f"{name}: runbook_url {url!r} is not docs/runbooks.md"
        anchor = url[len(URL) :]
        assert anchor in sections, f"{name}: no section #{anchor} in docs/runbooks.md"
        assert _header(sections[anchor]).startswith(f"**{name}**"), name
        assert owner.setdefault(anchor, name) == name, f"#{anchor} shared"


def test_each_collector_health_section_names_its_alerts_labels_severity_and_for(
    sections: dict[str, str],
) -> None:
    alerts = _self_alerts()
    assert len(alerts) >= 9
    for r in alerts:
        name = r["alert"]
        url = r.get("annotations", {}).get("runbook_url")
        assert url, f"{name}: no runbook_url"
        section = sections[url[len(URL) :]]
        header = _header(section)
        for key, value in r.get("labels", {}).items():
            assert f"`{key}={value}`" in header, f"{name}: label {key}={value}"
        severities = set(re.findall(r"`severity=(\w+)`", section))
        assert severities == {r["labels"]["severity"]}, name
        holds = {parse_duration(d) for d in re.findall(r"`for: (\w+)`", section)}
        assert holds == {parse_duration(r.get("for", "0s"))}, f"{name}: for {holds}"


def test_anchor_matches_githubs() -> None:
    assert _anchor("charger-offline") == "charger-offline"
    assert _anchor("OCPP error codes: what all of them share") == (
        "ocpp-error-codes-what-all-of-them-share"
    )
