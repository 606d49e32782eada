"""An S3-compatible server for the tiered storage tests: moto's server mode (the moto project's
own S3 implementation, installed by scripts/test), on a loopback port, with one bucket.

Usage: s3_server.py BUCKET [PORT]

Starts moto's ThreadedMotoServer on 127.0.0.1:PORT (0, the default: an ephemeral port), creates
BUCKET with boto3 through that server, and prints `PORT <n>`. Then it obeys lines on its
standard input, answering each on standard output once done:

  stop   closes the listening socket (connections are refused: the object store is down)
         -> `STOPPED`
  start  listens again on the same port, with the same objects (they live in this process)
         -> `STARTED`

It exits when its standard input closes, so it never outlives the test that started it.
"""

import sys
import time

import boto3
from moto.server import ThreadedMotoServer

# moto accepts any credentials; the tests pass these to wharf-server too.
ACCESS_KEY = "wharf-test"
SECRET_KEY = "wharf-test-secret"
REGION = "us-east-1"


def serve(port: int) -> ThreadedMotoServer:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    # Binding the same port again right after a stop can meet the old socket for a moment on
    # some kernels; werkzeug sets SO_REUSEADDR, so a few tries within a second are plenty.
    for attempt in range(50):
        try:
            server.start()
            return server
        except OSError:
            if attempt == 49:
                raise
            time.sleep(0.02)
    raise AssertionError("unreachable")


def stop(server: ThreadedMotoServer) -> None:
    server.stop()
    # moto's stop() ends serve_forever but leaves the socket listening, so new connections
    # would wait in its backlog; closing it makes the store refuse them, like a dead host.
    inner = server._server  # pylint: disable=protected-access
    if inner is not None:
        inner.server_close()


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print("usage: s3_server.py BUCKET [PORT]", file=sys.stderr)
        return 2
    bucket = sys.argv[1]
    port = int(sys.argv[2]) if len(sys.argv) == 3 else 0
    server = serve(port)
    host, port = server.get_host_and_port()
    boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    ).create_bucket(Bucket=bucket)
    print(f"PORT {port}", flush=True)
    running = True
    for line in sys.stdin:
        command = line.strip()
        if command == "stop":
            if running:
                stop(server)
                running = False
            print("STOPPED", flush=True)
        elif command == "start":
            if not running:
                server = serve(port)
                running = True
            print("STARTED", flush=True)
        else:
            print(f"unknown command {command!r}", file=sys.stderr, flush=True)
    if running:
        stop(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
