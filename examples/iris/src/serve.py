"""Serves the trained iris model over HTTP.

    GET  /health   -> {"status": "ok"}
    POST /predict  {"features": [[5.1, 3.5, 1.4, 0.2], ...]}
                   -> {"predictions": ["setosa", ...]}

Each row is sepal length, sepal width, petal length, petal width (cm). The model is read
from $MODEL_DIR/model.pkl (default /app/artifacts).
"""

import signal
import sys

# As PID 1 in a container a signal with no handler is ignored: exit on `stop` at once, even
# while the imports below are still loading.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

import os  # noqa: E402
import pickle  # noqa: E402

from flask import Flask, jsonify, request  # noqa: E402
from waitress import serve  # noqa: E402

MODEL_PATH = os.path.join(os.environ.get("MODEL_DIR", "/app/artifacts"), "model.pkl")

with open(MODEL_PATH, "rb") as f:
    saved = pickle.load(f)
model, target_names = saved["model"], saved["target_names"]

app = Flask(__name__)


@app.get("/health")
def health():
    return jsonify(status="ok")


@app.post("/predict")
def predict():
    body = request.get_json(silent=True)
    rows = body.get("features") if isinstance(body, dict) else None
    if isinstance(rows, list) and rows and all(isinstance(x, (int, float)) for x in rows):
        rows = [rows]
    valid = (
        isinstance(rows, list)
        and rows
        and all(
            isinstance(r, list) and len(r) == 4 and all(isinstance(x, (int, float)) for x in r)
            for r in rows
        )
    )
    if not valid:
        return jsonify(error='send {"features": [[sepal_len, sepal_wid, petal_len, petal_wid], ...]}'), 400
    return jsonify(predictions=[target_names[i] for i in model.predict(rows)])


def main() -> None:
    port = int(os.environ.get("PORT", "8080"))
    print(f"serving {MODEL_PATH} on port {port}", flush=True)
    serve(app, host="0.0.0.0", port=port)


if __name__ == "__main__":
    main()
