import pytest
from app import app


def test_index_greets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREETING", "Hi")
    response = app.test_client().get("/")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "Hi from Flask!\n"


def test_healthz() -> None:
    assert app.test_client().get("/healthz").get_json() == {"status": "ok"}
