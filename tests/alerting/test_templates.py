from __future__ import annotations

import pytest

from chargewatch.alerting.templates import Template, TemplateError

L = {"charger": "CP1", "connector": "2", "site": "depot"}


@pytest.mark.parametrize(
    ("text", "out"),
    [
        ("{{ $labels.charger }}/{{ $labels.connector }}", "CP1/2"),
        ("$labels.charger at $labels.site: $value", "CP1 at depot: 1234.5"),
        ("{{ $value | humanize }}W", "1.234 kW"),
        ('{{ printf "%.1f" $value }} C', "1234.5 C"),
        ('{{ $value | printf "%d" }}', "1234"),
        ("{{ .Labels.site | toUpper }}", "DEPOT"),
        ("{{ $labels.missing }}!", "!"),
        ("{{ humanizeDuration $value }}", "20m35s"),
    ],
)
def test_render(text: str, out: str) -> None:
    assert Template(text).render(L, 1234.5) == out


@pytest.mark.parametrize(
    ("text", "out"),
    [
        # A unit right after a value is set apart, SI prefix and all.
        ("at {{ $signals.p | humanize }}W.", "at 11.05 kW."),
        ("{{ $signals.zero | humanize }}W", "0 W"),
        ('{{ printf "%.0f" $signals.v }}V', "230 V"),
        ('{{ printf "%.0f" $signals.v }} V', "230 V"),  # spaced already: kept
        # Unknown is a word, without the unit.
        ('SoC {{ printf "%.0f" $signals.nan }} %, ok', "SoC unknown, ok"),
        ("{{ $signals.nan | humanize }}W flowed", "unknown flowed"),
        ("{{ $signals.nan | thousands }} Wh", "unknown"),
        # Durations in whole seconds from 1 s up (the receive jitter is noise).
        ("{{ $signals.d | humanizeDuration }}", "1m"),
        ("{{ $signals.d2 | humanizeDuration }}", "9m51s"),
        ("{{ $signals.ms | humanizeDuration }}", "250ms"),
        # Not a unit: left alone.
        ("{{ $signals.zero | humanize }}Wide", "0Wide"),
    ],
)
def test_units_and_unknowns(text: str, out: str) -> None:
    sig = {"p": 11050.0, "zero": 0.0, "v": 230.2, "nan": float("nan")}
    sig |= {"d": 60.18, "d2": 590.5, "ms": 0.25}
    assert Template(text).render(L, 0.0, lambda n: sig[n]) == out


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
