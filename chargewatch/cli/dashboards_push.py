"""The work of ``chargewatch dashboards push`` (cli/dashboards.py): read the
dashboard files and upload them through a GrafanaApi. Apart from the command's
module so that building the parser at every start does not import it."""

from __future__ import annotations

__all__ = ["PushResult", "default_dashboard_dir", "load_dashboards", "push"]

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chargewatch.cli.dashboards import DEFAULT_FOLDER
from chargewatch.core.errors import ConfigError, ConfigProblem
from chargewatch.core.resources import default_dir


def default_dashboard_dir() -> Path:
    """The repository's dashboards/ when run from a checkout, else the copy in the wheel."""
    return default_dir("dashboards")


def load_dashboards(directory: Path) -> list[dict[str, Any]]:
    """Every ``*.json`` in ``directory``, checked to be a dashboard with a uid."""
    problems: list[ConfigProblem] = []
    out: list[dict[str, Any]] = []
    files = sorted(directory.glob("*.json"))
    if not files:
        raise ConfigError([ConfigProblem(str(directory), "", "no dashboard JSON files here")])
    for f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problems.append(ConfigProblem(str(f), "", f"cannot read dashboard: {exc}"))
            continue
        if not isinstance(data, dict) or not data.get("uid") or "panels" not in data:
            problems.append(ConfigProblem(str(f), "", "not a Grafana dashboard with a uid"))
            continue
        out.append(data)
    if problems:
        raise ConfigError(problems)
    return out


@dataclass
class PushResult:
    folder_uid: str
    uploaded: list[tuple[str, str]]  # (uid, url path Grafana reports)


def _folder_uid(api: Any, title: str) -> str:
    for folder in api.folder.get_all_folders():
        if folder.get("title") == title:
            return str(folder["uid"])
    created = api.folder.create_folder(title)
    return str(created["uid"])


def push(api: Any, dashboards: list[dict[str, Any]], folder: str = DEFAULT_FOLDER) -> PushResult:
    """Upload ``dashboards`` into ``folder`` (created when missing) through a GrafanaApi."""
    folder_uid = _folder_uid(api, folder)
    done: list[tuple[str, str]] = []
    for dash in dashboards:
        body = dict(dash)
        # Grafana assigns its own numeric id per instance; sending ours would
        # clash with another dashboard there. The uid is what stays stable.
        body.pop("id", None)
        resp = api.dashboard.update_dashboard(
            {
                "dashboard": body,
                "folderUid": folder_uid,
                "overwrite": True,
                "message": "chargewatch dashboards push",
            }
        )
        done.append((str(dash["uid"]), str(resp.get("url", ""))))
    return PushResult(folder_uid, done)
