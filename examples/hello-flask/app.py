"""A minimal Flask app to try deploychat with: "deploy ./examples/hello-flask locally"."""

import os

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index() -> str:
    greeting = os.environ.get("GREETING", "Hello")
    return f"{greeting} from Flask!\n"


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    # For `python app.py`; deployed, gunicorn serves `app:app` on $PORT instead.
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "8080")))
