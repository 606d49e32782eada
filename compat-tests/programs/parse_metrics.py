"""Parses a whole Prometheus exposition (GET /metrics) with the Prometheus project's own Python
parser and prints what it read as JSON, for compat-tests/tests/observability.rs.

Usage: parse_metrics.py text|openmetrics < body

`text` is the Prometheus text format 0.0.4 (prometheus_client.parser), `openmetrics` the
OpenMetrics text format (prometheus_client.openmetrics.parser, which is strict: it also demands
the closing `# EOF`). Any parse error exits 1 with the parser's message, so the test fails.

Output: {"families": [{"name", "type", "samples": [{"name", "labels", "value"}]}]} with each value
as Python's repr of the float (so `inf` and `nan` survive JSON).
"""

import json
import sys

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as text_families


def main() -> int:
    if len(sys.argv) != 2 or sys.argv[1] not in ("text", "openmetrics"):
        print("usage: parse_metrics.py text|openmetrics < body", file=sys.stderr)
        return 2
    parse = text_families if sys.argv[1] == "text" else openmetrics_families
    body = sys.stdin.read()
    try:
        families = [
            {
                "name": f.name,
                "type": f.type,
                "samples": [
                    {"name": s.name, "labels": dict(s.labels), "value": repr(float(s.value))}
                    for s in f.samples
                ],
            }
            for f in parse(body)
        ]
    except Exception as e:  # the parsers raise ValueError and others on bad input
        print(f"{sys.argv[1]} parser rejected the exposition: {type(e).__name__}: {e}",
              file=sys.stderr)
        return 1
    json.dump({"families": families}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
