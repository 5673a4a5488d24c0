"""Runs last (file order): after everything above, the server still answers."""


def test_server_still_answers(api):
    r = api.get("/")
    assert r.status_code == 200
    assert r.json()["message"] == "Gateway is running"
    assert api.get("/health/ready").status_code == 200
