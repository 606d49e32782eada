"""What the Python Kafka client programs beside this file share: the check that fails a
scenario, the watchdog that bounds a whole run, and the runner that prints the lines the Rust
tests and run-all read (a banner, then `PASS name (Ns)` or `FAIL name (Ns): detail` per scenario,
then `NAME: P passed, F failed`; exit status 1 if any failed).

The programs run as `python compat-tests/kafka-clients/<program>.py`, so this folder is on
sys.path and they import it as `from scenarios import ...`.
"""
import os
import sys
import threading
import time
import traceback

WAIT_S = 60.0  # the bound on every wait


class Failed(Exception):
    """A scenario's check did not hold; its message is the whole detail (no traceback)."""


def check(cond, what):
    if not cond:
        raise Failed(what)


def watchdog(seconds, fire):
    """A bound on the whole run, even if a client call hangs inside a library: calls fire()
    (which must end the process) after `seconds`."""
    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()


def run_timeout(default_s):
    """The bound on a whole run: WHARF_TEST_TIMEOUT (seconds), else default_s."""
    return float(os.environ.get("WHARF_TEST_TIMEOUT", str(default_s)))


def values(tag, partition, n):
    """n distinct record values for a partition, as the transaction programs send them."""
    return [f"{tag}-{partition}-{i}" for i in range(n)]


def run_scenarios(name, banner, scenarios, timeout_s):
    """Runs scenarios ([(title, fn)]) in order under a watchdog of timeout_s, printing the banner,
    a PASS or FAIL line per scenario and a summary under name; exits 1 if any failed, else 0."""
    def fire():
        print(f"FAIL {name}: the whole run took over {timeout_s}s; stopped", flush=True)
        os._exit(1)
    watchdog(timeout_s, fire)
    print(banner, flush=True)
    failed = 0
    for title, fn in scenarios:
        start = time.monotonic()
        try:
            fn()
            print(f"PASS {title} ({time.monotonic() - start:.1f}s)", flush=True)
        except Exception as e:
            failed += 1
            detail = str(e) if isinstance(e, Failed) else traceback.format_exc()
            print(f"FAIL {title} ({time.monotonic() - start:.1f}s): {detail}", flush=True)
    print(f"{name}: {len(scenarios) - failed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)
