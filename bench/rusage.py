"""Run a command, wait for it, print its peak memory: `python -m bench.rusage CMD…`.

``ru_maxrss`` of RUSAGE_CHILDREN is the largest resident set of any descendant that was
waited for: for an rq worker that covers the worker and every work-horse it forked for a
job (the worker waits for each horse). SIGTERM and SIGINT are passed on to the command
(rq: warm shut-down). Prints one line ``RUSAGE {json}`` when the command has exited.
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys


def main() -> int:
    child = subprocess.Popen(sys.argv[1:])

    def forward(signum, frame):
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = child.wait()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print("RUSAGE " + json.dumps({"maxrss_mb": usage.ru_maxrss / 1024, "returncode": code}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
