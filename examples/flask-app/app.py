"""A simple web app: one page and a visit counter."""

import signal
import socket
import sys

from flask import Flask

app = Flask(__name__)
visits = 0


@app.get("/")
def index():
    global visits
    visits += 1
    return f"Hello from {socket.gethostname()}! This page has been seen {visits} time(s).\n"


if __name__ == "__main__":
    # As PID 1 in a container a signal with no handler is ignored: exit on `stop` at once.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app.run(host="0.0.0.0", port=8080)
