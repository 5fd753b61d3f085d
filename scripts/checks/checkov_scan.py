"""Runs checkov and fails on any finding, and also when checkov did not scan one of the
files it was meant to: checkov silently skips a file it cannot parse or whose schema it
rejects (a GitHub workflow it finds invalid yields no result at all, not an error).

    python scripts/checks/checkov_scan.py FILE... -- CHECKOV_ARGUMENTS...

Each FILE must appear in checkov's results (passed, failed or skipped checks).
"""

import json
import subprocess
import sys


def main() -> int:
    if "--" not in sys.argv:
        print(__doc__, file=sys.stderr)
        return 2
    split = sys.argv.index("--")
    expected, arguments = sys.argv[1:split], sys.argv[split + 1:]
    out = subprocess.run(["checkov", *arguments, "--output", "json"], capture_output=True, text=True, check=False)
    try:
        reports = json.loads(out.stdout)
    except json.JSONDecodeError:
        print(out.stdout[-2000:], out.stderr[-2000:], sep="\n", file=sys.stderr)
        print("checkov: no JSON report", file=sys.stderr)
        return 1
    reports = reports if isinstance(reports, list) else [reports]
    # An empty scan prints a bare summary instead of a report.
    reports = [r for r in reports if isinstance(r, dict) and "results" in r]
    scanned = set()
    problems = []
    for report in reports:
        results = report["results"]
        for kind in ("passed_checks", "failed_checks", "skipped_checks"):
            for check in results.get(kind, []):
                scanned.add(check["file_path"].lstrip("/"))
        for check in results.get("failed_checks", []):
            lines = check.get("file_line_range") or []
            problems.append(f"{check['file_path'].lstrip('/')}:{'-'.join(map(str, lines))}: "
                            f"{check['check_id']} {check.get('check_name', '')}")
        for path in report.get("summary", {}).get("parsing_errors_list", []) or []:
            problems.append(f"{path}: checkov could not parse it")
        if report.get("summary", {}).get("parsing_errors"):
            problems.append(f"{report.get('check_type')}: {report['summary']['parsing_errors']} parsing error(s)")
    for path in expected:
        if not any(path == s or path.endswith("/" + s) for s in scanned):
            problems.append(f"{path}: checkov scanned nothing in it (unparsable, or rejected by its schema?)")
    for problem in problems:
        print(problem)
    summary = ", ".join(f"{r.get('check_type')}: {r['summary'].get('passed', 0)} passed, "
                        f"{r['summary'].get('failed', 0)} failed" for r in reports)
    print(f"checkov {summary or 'no results'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
