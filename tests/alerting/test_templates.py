from __future__ import annotations

import pytest

from chargewatch.alerting.templates import Template, TemplateError

L = {"charger": "CP1", "connector": "2", "site": "depot"}


@pytest.mark.parametrize(
    ("text", "out"),
    [
        ("{{ $labels.charger }}/{{ $labels.connector }}", "CP1/2"),
        ("$labels.charger at $labels.site: $value", "CP1 at depot: 1234.5"),
        ("{{ $value | humanize }}W", "1.234kW"),
        ('{{ printf "%.1f" $value }} C', "1234.5 C"),
        ('{{ $value | printf "%d" }}', "1234"),
        ("{{ .Labels.site | toUpper }}", "DEPOT"),
        ("{{ $labels.missing }}!", "!"),
        ("{{ humanizeDuration $value }}", "20m34s500ms"),
    ],
)
def test_render(text: str, out: str) -> None:
    assert Template(text).render(L, 1234.5) == out


@pytest.mark.parametrize(
    "text",
    [
        '{{ exec "reboot" }}',
        "{{ $labels.charger ",
        '{{ index $labels "x" }}',
        "{{ }}",
        '{{ template "x" }}',
        "{{ .Value | call }}",
    ],
)
def test_anything_outside_the_vocabulary_is_rejected_at_load(text: str) -> None:
    with pytest.raises(TemplateError):
        Template(text)


def test_label_values_are_not_re_evaluated() -> None:
    # A label value that looks like a template is data, never code.
    assert (
        Template("{{ $labels.charger }}").render({"charger": "{{ $value }}"}, 1.0) == "{{ $value }}"
    )
