"""Reports for people (Markdown, HTML) and for CI (JUnit XML), rendered from the journal."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from runbooks.journal import Journal, Step

_STATUS_MARK = {
    "ok": "ok", "changed": "changed", "failed": "FAILED", "skipped": "skipped",
    "unreachable": "UNREACHABLE", "interrupted": "INTERRUPTED", "warn": "WARN", "fail": "FAIL",
}


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


def render_markdown(journal: Journal) -> str:
    return _env().get_template("report.md.j2").render(j=journal, problems=problems(journal))


def render_html(journal: Journal) -> str:
    return _env().get_template("report.html.j2").render(j=journal, problems=problems(journal))


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
