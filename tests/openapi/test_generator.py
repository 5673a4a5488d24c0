"""The OpenAPI generator (api/openapi/openapi_gen.c) and the lint of what it generates.

The generator must refuse to write a document that drifts from the route table: these tests run
it on copies of its inputs with one thing wrong and expect a failure naming it, and nothing
written. The last test lints the built document with the pinned Redocly CLI (tests/openapi/lint.sh).
"""
import json
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("OPENAPI_BUILD", os.path.join(ROOT, "build"))
GEN = os.path.join(BUILD, "tools", "openapi_gen")
BUILT = os.path.join(BUILD, "gen", "openapi.json")
ASSETS = ["index.html", "apidoc.js", "apidoc.css"]


@pytest.fixture(scope="module")
def generator():
    if not os.path.exists(GEN):
        pytest.fail("%s is missing: run make all first" % GEN)
    return GEN


def run(generator, tmp_path, edit_routes=None, edit_skeleton=None, drop_schema=None):
    """Runs the generator on copies of the real inputs, edited; returns (exit code, stderr, paths)."""
    inputs = tmp_path / "in"
    shutil.copytree(os.path.join(ROOT, "schemas"), inputs / "schemas")
    routes_path = inputs / "schemas" / "openapi" / "routes.json"
    skeleton_path = inputs / "schemas" / "openapi" / "document.json"
    if edit_routes:
        routes = json.loads(routes_path.read_text())
        edit_routes(routes)
        routes_path.write_text(json.dumps(routes))
    if edit_skeleton:
        skeleton = json.loads(skeleton_path.read_text())
        edit_skeleton(skeleton)
        skeleton_path.write_text(json.dumps(skeleton))
    if drop_schema:
        os.remove(inputs / "schemas" / "responses" / (drop_schema + ".json"))
    out_json, out_c = tmp_path / "openapi.json", tmp_path / "openapi_embedded.c"
    assets = ["%s=%s" % (a, os.path.join(ROOT, "api", "apidoc", a)) for a in ASSETS]
    p = subprocess.run([generator, str(skeleton_path), str(routes_path), str(inputs / "schemas"),
                        str(inputs / "schemas" / "responses"), str(out_json), str(out_c)] + assets,
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stderr, out_json, out_c


def test_the_real_inputs_make_the_built_document(generator, tmp_path):
    code, err, out_json, out_c = run(generator, tmp_path)
    assert code == 0, err
    with open(BUILT, "rb") as f:
        assert out_json.read_bytes() == f.read(), "build/gen/openapi.json is not what the inputs make now"
    doc = json.loads(out_json.read_text())
    assert doc["openapi"].startswith("3.1.")
    assert "rp_apidoc_files" in out_c.read_text()


def test_a_route_without_documentation_fails(generator, tmp_path):
    code, err, out_json, out_c = run(generator, tmp_path, edit_routes=lambda r: r.pop("GET /events/{id}"))
    assert code == 1
    assert "route GET /events/{id} has no documentation" in err
    assert not out_json.exists() and not out_c.exists()


def test_documentation_of_a_route_the_table_lacks_fails(generator, tmp_path):
    def add(routes):
        routes["GET /events/{id}/nothing"] = {"summary": "x", "responses": {"200": {"schema": "event"}}}
    code, err, out_json, _ = run(generator, tmp_path, edit_routes=add)
    assert code == 1
    assert "documents GET /events/{id}/nothing, which the route table does not have" in err
    assert not out_json.exists()


def test_a_missing_response_schema_fails(generator, tmp_path):
    code, err, out_json, _ = run(generator, tmp_path, drop_schema="eligibility")
    assert code == 1
    assert "eligibility.json" in err
    assert not out_json.exists()


def test_a_route_without_a_success_answer_fails(generator, tmp_path):
    def drop(routes):
        routes["GET /auth/me"]["responses"].pop("200")
    code, err, _, _ = run(generator, tmp_path, edit_routes=drop)
    assert code == 1
    assert "GET /auth/me: no success (2xx) answer documented" in err


def test_an_unknown_member_fails(generator, tmp_path):
    def typo(routes):
        routes["GET /auth/me"]["reponses"] = {}
    code, err, _, _ = run(generator, tmp_path, edit_routes=typo)
    assert code == 1
    assert "GET /auth/me: unknown member reponses" in err


def test_generic_answers_follow_the_route_table():
    """The gateway's own answers come from the route's properties, not from hand-written entries."""
    with open(BUILT) as f:
        doc = json.load(f)
    me = doc["paths"]["/auth/me"]["get"]
    assert "TOKEN_EXPIRED" in me["responses"]["401"]["x-error-codes"]
    assert me["security"] == [{"bearerAuth": []}] and me["x-roles"] == ["ANY"]
    register = doc["paths"]["/auth/register"]["post"]
    assert register["security"] == [] and register["x-roles"] == ["PUBLIC"]
    assert "401" not in register["responses"] or "UNAUTHORIZED" not in register["responses"]["401"]["x-error-codes"]
    assert "TOO_MANY_LOGINS" in register["responses"]["429"]["x-error-codes"]
    assert {"413", "415"} <= set(register["responses"])
    users = doc["paths"]["/auth/users"]["get"]
    assert users["x-roles"] == ["ADMIN"] and "Roles: ADMIN." in users["description"]
    assert "FORBIDDEN" in users["responses"]["403"]["x-error-codes"]
    assert "413" not in users["responses"]
    live = doc["paths"]["/health/live"]["get"]
    assert "RATE_LIMITED" not in live["responses"]["429"]["x-error-codes"]
    # a probe never calls a worker: its only 503 is the stopping process's refusal, which every route has
    assert live["responses"]["503"]["x-error-codes"] == ["SHUTTING_DOWN"]
    assert all("SHUTTING_DOWN" in op["responses"]["503"]["x-error-codes"]
               for item in doc["paths"].values() for op in item.values() if isinstance(op, dict) and "responses" in op)


def test_the_document_passes_the_linter():
    p = subprocess.run([os.path.join(ROOT, "tests", "openapi", "lint.sh"), BUILT], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Your API description is valid" in p.stdout + p.stderr
