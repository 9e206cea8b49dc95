"""Reports for people (Markdown, HTML) and for CI (JUnit XML), rendered from the journal."""

from __future__ import annotations

import functools
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from runbooks.journal import Journal, Step

_STATUS_MARK = {
    "ok": "ok", "changed": "changed", "failed": "FAILED", "skipped": "skipped",
    "unreachable": "UNREACHABLE", "interrupted": "INTERRUPTED", "warn": "WARN", "fail": "FAIL",
}


@functools.cache
def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("runbooks", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["mark"] = lambda s: _STATUS_MARK.get(s, s)
    env.filters["cell"] = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
    return env


def load_templates() -> None:
    """Compile the report templates now (a run does it while its playbook runs)."""
    for name in ("report.md.j2", "report.html.j2"):
        _env().get_template(name)


def problems(journal: Journal) -> list[tuple[Step, str]]:
    """What went wrong, one line each, for the top of the report."""
    found: list[tuple[Step, str]] = []
    for step in journal.steps:
        if step.failed and not step.checks:
            found.append((step, step.message or step.status))
        for check in step.checks:
            if check.status in ("fail", "warn"):
                hint = f" (hint: {check.hint})" if check.hint else ""
                found.append((step, f"{check.name}: {check.evidence}{hint}"))
    return found


_CHECK_ORDER = {"fail": 0, "warn": 1, "skipped": 2, "ok": 3}
_SEVERITY = {"ok": 0, "skipped": 1, "warn": 2, "fail": 3}


def check_rows(journal: Journal) -> list[dict[str, str]]:
    """One row per cluster and check (a checklist's consolidated view), worst first within a
    cluster, clusters in the order of the run."""
    order = {name: i for i, name in enumerate(journal.clusters)}
    rows = [{"cluster": step.cluster, "step": step.name, "check": check.name,
             "status": check.status, "evidence": check.evidence, "hint": check.hint}
            for step in journal.steps for check in step.checks]
    return sorted(rows, key=lambda r: (order.get(r["cluster"], len(order)),
                                       _CHECK_ORDER.get(r["status"], 0)))


def check_summary(journal: Journal) -> dict[str, dict[str, Any]]:
    """Per cluster: the worst check status and the count of each status."""
    summary: dict[str, dict[str, Any]] = {}
    for row in check_rows(journal):
        entry = summary.setdefault(row["cluster"], {"worst": "ok", "ok": 0, "warn": 0,
                                                    "fail": 0, "skipped": 0})
        entry[row["status"]] = entry.get(row["status"], 0) + 1
        if _SEVERITY.get(row["status"], 3) > _SEVERITY[entry["worst"]]:
            entry["worst"] = row["status"]
    return summary


def render_json(journal: Journal) -> str:
    """The consolidated machine report: the run's outcome, per-cluster summary, every check."""
    summary = check_summary(journal)
    worst = max((s["worst"] for s in summary.values()), key=lambda w: _SEVERITY[w],
                default=None)
    return json.dumps({
        "runbook": journal.runbook, "run_id": journal.run_id, "status": journal.status,
        "exit_code": journal.exit_code, "started": journal.started.isoformat(),
        "duration": journal.duration, "clusters": dict(journal.clusters),
        "left_out": dict(journal.left_out), "worst_check": worst, "summary": summary,
        "checks": check_rows(journal), "message": journal.message,
    }, indent=2)


def render_markdown(journal: Journal) -> str:
    return _env().get_template("report.md.j2").render(j=journal, problems=problems(journal),
                                                      summary=check_summary(journal))


def render_html(journal: Journal) -> str:
    return _env().get_template("report.html.j2").render(j=journal, problems=problems(journal),
                                                        summary=check_summary(journal))


def render_junit(journal: Journal) -> str:
    """One test case per cluster x step (per check where a step carries checks)."""
    suite = ET.Element("testsuite", name=f"watchkeeper.{journal.runbook}",
                       timestamp=journal.started.isoformat(), time=f"{journal.duration:.3f}")
    counts = {"tests": 0, "failures": 0, "skipped": 0}

    def case(classname: str, name: str, seconds: float, status: str, text: str) -> None:
        element = ET.SubElement(suite, "testcase", classname=classname, name=name,
                                time=f"{seconds:.3f}")
        counts["tests"] += 1
        if status in ("failed", "unreachable", "interrupted", "fail"):
            counts["failures"] += 1
            failure = ET.SubElement(element, "failure", message=text[:200] or status, type=status)
            failure.text = text
        elif status in ("skipped",):
            counts["skipped"] += 1
            ET.SubElement(element, "skipped", message=text[:200])
        elif text:
            ET.SubElement(element, "system-out").text = text

    for step in journal.steps:
        classname = f"{journal.runbook}.{step.cluster}"
        if step.checks:
            for check in step.checks:
                detail = check.evidence + (f"\nhint: {check.hint}" if check.hint else "")
                case(classname, f"{step.phase}: {step.name}: {check.name}", 0.0, check.status,
                     detail)
        else:
            case(classname, f"{step.phase}: {step.name}", step.duration, step.status,
                 step.message)
    for name, why in journal.left_out.items():
        case(f"{journal.runbook}.{name}", "left out", 0.0, "skipped", why)
    if not journal.steps:
        case(f"{journal.runbook}.-", "run", journal.duration,
             "ok" if journal.status == "successful" else "failed", journal.message)
    for key, value in counts.items():
        suite.set(key, str(value))
    suite.set("errors", "0")
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def write_reports(journal: Journal, run_dir: Path) -> None:
    (run_dir / "report.md").write_text(render_markdown(journal))
    (run_dir / "report.html").write_text(render_html(journal))
    (run_dir / "junit.xml").write_text(render_junit(journal))
    (run_dir / "report.json").write_text(render_json(journal))
