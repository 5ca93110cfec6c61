"""Every code block of the docs is run by the suite, or says why it can't be.

The guard: each fenced block of the README and the docs pages is marked (snippet,
same-as or not-run, see ``tests/docs_snippets.py``); each snippet is read by some test;
each copy equals its snippet. Then the snippets no other module runs, run here: the
static-files settings with ``collectstatic`` and DEBUG off, the template of the browser
client, the mobile client against a live server with the DRF blocks, the view that
signs with ``sign_user_id``, the signal receiver, the lean WSGI file, the admin index
override and the production settings.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import types
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.template import RequestContext, Template
from django.test import Client, RequestFactory

from trusted_identity import signing, testing
from trusted_identity.services import access, platform_secrets

from .docs_snippets import ROOT, all_blocks, parse_blocks, snippet
from .factories import PlatformFactory, SpaceFactory, UserFactory

TESTS = Path(__file__).resolve().parent


# ------------------------------------------------------------------ the guard


def _string_constants() -> set[str]:
    """Every string constant in the test modules: where a test names the snippet it runs."""
    found: set[str] = set()
    for path in TESTS.rglob("*.py"):
        if path.name == "docs_snippets.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value)
    return found


def test_every_code_block_is_run_or_says_why_not():
    code = [block for block in all_blocks() if block.is_code]
    assert len(code) > 30  # the README's and the pages' blocks were all found
    unmarked = [f"{b.where} ({b.language})" for b in code if b.marker is None]
    assert unmarked == [], "mark each block: snippet, same-as or not-run (docs/contributing.md)"


def test_every_snippet_has_one_name_read_by_a_test():
    names = [b.value for b in all_blocks() if b.marker == "snippet"]
    assert len(names) == len(set(names)), "a snippet name is used twice"
    unread = set(names) - _string_constants()
    assert unread == set(), "no test reads these snippets"


def test_every_copy_is_its_snippet_and_every_reason_says_something():
    for block in all_blocks():
        if block.marker == "same-as":
            assert block.code == snippet(block.value), block.where
        if block.marker == "not-run":
            assert len(block.value.split()) >= 4, f"{block.where}: say why, and what covers it"


def test_the_readme_copies_the_adoption_blocks():
    readme = [b.value for b in all_blocks() if b.path.name == "README.md" and b.marker]
    assert {"adopt-settings", "adopt-urls", "adopt-commands"} <= set(readme)


def test_the_block_reader_finds_markers_languages_and_indented_blocks():
    text = (
        "<!-- snippet: one -->\n```python\nx = 1\n```\n\n"
        "1. a step\n\n   <!-- not-run: a reason of four words -->\n   ```sh\n   ls\n   ```\n"
        "```\ndiagram\n```\n```{toctree}\nindex\n```\n"
    )
    one, step, diagram, directive = parse_blocks(ROOT / "x.md", text)
    assert (one.marker, one.value, one.language, one.code) == (
        "snippet",
        "one",
        "python",
        "x = 1\n",
    )
    assert (step.marker, step.language, step.code) == ("not-run", "sh", "ls\n")
    assert not diagram.is_code and not directive.is_code and one.is_code


# ------------------------------------------------------------------ the snippets


def test_static_files_are_served_with_debug_off_as_the_docs_say(db, settings, tmp_path):
    """docs/adopting.md: the settings, ``collectstatic``, then the client and the admin's
    stylesheet fetched with DEBUG off."""
    namespace: dict = {"__file__": str(tmp_path / "mysite" / "settings.py")}
    exec(compile(snippet("adopt-static-settings"), "docs/adopting.md", "exec"), namespace)
    assert namespace["STATIC_ROOT"] == tmp_path / "staticfiles"
    settings.DEBUG = False
    settings.STATIC_URL = namespace["STATIC_URL"]
    settings.STATIC_ROOT = namespace["STATIC_ROOT"]
    settings.STORAGES = namespace["STORAGES"]
    settings.MIDDLEWARE = namespace["MIDDLEWARE"]
    call_command("collectstatic", "--noinput", verbosity=0)

    from django.templatetags.static import static

    url = static("trusted_identity/client.js")
    assert url.startswith("/static/trusted_identity/client.") and url != "/static/client.js"
    client = Client()  # a new handler: the middleware above, reading STATIC_ROOT now
    response = client.get(url)
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    response.close()  # a file response holds its file open until closed
    assert b"export async function startSession" in body
    assert "immutable" in response["Cache-Control"]  # a hashed name, cached for good
    css = client.get(static("admin/css/base.css"))
    css.close()
    assert css.status_code == 200
    assert client.get("/static/trusted_identity/nope.js").status_code == 404


def _template_request(user):
    request = RequestFactory().get("/page/")
    request.user = user
    return request


def test_the_client_template_renders_for_a_user_and_a_visitor(db, settings):
    from django.contrib.auth.models import AnonymousUser

    settings.TRUSTED_IDENTITY = {**settings.TRUSTED_IDENTITY, "SIGNING_SPACE": "acme"}
    platform = testing.create_platform("web", space="acme", secret="s3cr3t")
    template = Template(snippet("client-template"))
    user = UserFactory(username="ann")
    page = template.render(RequestContext(_template_request(user)))
    config = json.loads(page.split('id="trusted-identity-web">', 1)[1].split("</script>")[0])
    assert config["apiKey"] == platform.api_key
    assert config["userId"] == str(user.pk)
    assert config["signed"] == signing.sign("s3cr3t", str(user.pk))
    assert 'from "/static/trusted_identity/client.js"' in page
    assert (ROOT / "trusted_identity/static/trusted_identity/client.js").exists()
    visitor = template.render(RequestContext(_template_request(AnonymousUser())))
    assert "signed" not in visitor.split('id="trusted-identity-web">', 1)[1].split("</script>")[0]


@pytest.fixture
def mobile_site(settings, transactional_db):
    """The adoption page's urls.py with the DRF token route, and its DRF settings."""
    namespace: dict = {}
    exec(compile(snippet("drf-settings"), "docs/adopting.md", "exec"), namespace)
    assert set(namespace["INSTALLED_APPS"]) <= set(settings.INSTALLED_APPS)
    settings.TRUSTED_IDENTITY = {
        **settings.TRUSTED_IDENTITY,
        **namespace["TRUSTED_IDENTITY"],
        "SIGNING_SPACE": "acme",
    }
    urls = types.ModuleType("docs_mobile_urls")
    source = snippet("adopt-urls") + snippet("drf-token-route")
    exec(compile(source, "docs/adopting.md", "exec"), urls.__dict__)
    sys.modules[urls.__name__] = urls
    settings.ROOT_URLCONF = urls.__name__
    yield
    del sys.modules[urls.__name__]


def test_the_mobile_client_logs_in_signs_starts_and_survives_a_rotation(mobile_site, live_server):
    """docs/client-kit.md's mobile client against docs/adopting.md's DRF blocks."""
    space = SpaceFactory(slug="acme", name="Acme")
    platform = PlatformFactory(space=space, kind="ios")
    get_user_model().objects.create_user("olivia", password="correct horse")
    app: dict = {"__name__": "docs_mobile_client"}
    exec(compile(snippet("mobile-client"), "docs/client-kit.md", "exec"), app)
    app["BASE"], app["API_KEY"] = live_server.url, platform.api_key

    with pytest.raises(RuntimeError, match="log-in refused"):
        app["log_in"]("olivia", "wrong")
    app["log_in"]("olivia", "correct horse")
    status, session = app["start_session"]("3.2.1")
    assert status == 201 and session["trusted"] is True, session
    first = app["saved"]["signed"]

    with testing.enforcement(platform):
        platform_secrets.rotate_secret(platform, access.get_cli_actor(), timedelta(0))
        status, session = app["start_session"]("3.2.1")
    assert status == 201 and session["trusted"] is True, session
    assert app["saved"]["signed"] != first  # fetched again, once, after the 403
    counts = testing.counts(platform)
    assert (counts["valid"], counts["rejected"]) == (2, 1)


def test_the_sign_user_id_view_signs_the_requests_user(db):
    namespace: dict = {}
    exec(compile(snippet("sign-user-id-view"), "docs/signing.md", "exec"), namespace)
    testing.create_platform("ios", space="my-space", secret="s3cr3t")
    user = UserFactory(username="bob")
    answer = json.loads(namespace["profile"](_template_request(user)).content)
    assert answer == {"userId": str(user.pk), "signed": signing.sign("s3cr3t", str(user.pk))}


def test_the_signal_receiver_hears_a_reveal(db):
    from trusted_identity.models import Platform
    from trusted_identity.signals import secret_revealed

    namespace: dict = {"__name__": "docs_signal_receiver"}
    exec(compile(snippet("signal-receiver"), "docs/adopting.md", "exec"), namespace)
    receiver = namespace["tell_security"]
    try:
        platform = testing.create_platform("web", space="acme")
        platform_secrets.reveal_secret(platform, access.get_cli_actor())  # no error from it
        answers = secret_revealed.send(sender=Platform, platform=platform, user=None)
        assert (receiver, None) in answers
    finally:
        assert secret_revealed.disconnect(receiver)


def test_the_lean_asgi_file_answers_a_session_start(db):
    from trusted_identity.asgi import LeanSessions

    from .lean_client import call_asgi

    def application():
        namespace: dict = {}
        exec(compile(snippet("lean-asgi"), "docs/production.md", "exec"), namespace)
        application = namespace["application"]
        assert isinstance(application, LeanSessions) and application.active
        application.threads = 0  # the test's own thread: its transaction
        return application

    platform = testing.create_platform("web", space="acme", secret="s3cr3t")
    body = json.dumps({"userId": "42", "signed": signing.sign("s3cr3t", "42")}).encode()
    scope = {
        "type": "http", "method": "POST", "path": "/trusted-identity/v1/sessions",
        "query_string": b"", "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-api-key", platform.api_key.encode())],
    }  # fmt: skip
    # As a server calls it, the test's transaction kept (its close_old_connections would
    # close the PostgreSQL connection the test's transaction lives on), as call_wsgi does.
    status, _headers, answer = call_asgi(application, scope, body)
    assert status == "201 Created"
    assert json.loads(answer)["trusted"] is True


def test_the_lean_wsgi_file_answers_a_session_start(db):
    from io import BytesIO

    from trusted_identity.wsgi import LeanSessions

    from .lean_client import call_wsgi

    def application():
        namespace: dict = {}
        exec(compile(snippet("lean-wsgi"), "docs/production.md", "exec"), namespace)
        assert isinstance(namespace["application"], LeanSessions)
        return namespace["application"]

    platform = testing.create_platform("web", space="acme", secret="s3cr3t")
    body = json.dumps({"userId": "42", "signed": signing.sign("s3cr3t", "42")}).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/trusted-identity/v1/sessions",
        "SCRIPT_NAME": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": "testserver",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_X_API_KEY": platform.api_key,
        "wsgi.input": BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "REMOTE_ADDR": "127.0.0.1",
    }
    # As a server calls it, the test's transaction kept (as Django's test client keeps it).
    status, _headers, answer = call_wsgi(application, environ)
    assert status == "201 Created"
    assert json.loads(answer)["trusted"] is True


def test_the_admin_index_override_is_the_example_projects():
    """The example project's templates/admin/index.html is the snippet (plus a comment);
    tests/admin/test_layout_wording.py renders it."""
    lines = (ROOT / "templates" / "admin" / "index.html").read_text(encoding="utf-8")
    kept = [line for line in lines.splitlines() if not line.startswith("{#")]
    assert "\n".join(kept) + "\n" == snippet("admin-index-template")
    Template(snippet("admin-index-template"))  # it parses


def test_the_production_settings_leave_the_app_nothing_to_say(settings, monkeypatch):
    """docs/deploying.md: with its settings, the app's checks (``--deploy`` included)
    report nothing."""
    from django.core import checks

    from trusted_identity.crypto import generate_key

    monkeypatch.setenv("SECRET_KEY", "x" * 60)
    monkeypatch.setenv("DATABASE_PASSWORD", "unused")
    monkeypatch.setenv("TRUSTED_IDENTITY_ENCRYPTION_KEYS", generate_key())
    namespace: dict = {}
    exec(compile(snippet("deploy-settings"), "docs/deploying.md", "exec"), namespace)
    assert namespace["DEBUG"] is False
    assert namespace["DATABASES"]["default"]["ENGINE"] == "django.db.backends.postgresql"
    settings.DEBUG = False
    settings.CACHES = namespace["CACHES"]
    settings.TRUSTED_IDENTITY = namespace["TRUSTED_IDENTITY"]
    found = checks.run_checks(include_deployment_checks=True)
    assert [e.id for e in found if e.id.startswith("trusted_identity.")] == []
    # The same with a process-local cache is the warning the page names.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    found = checks.run_checks(include_deployment_checks=True)
    assert "trusted_identity.W002" in {e.id for e in found}


def test_the_docs_name_only_test_files_that_exist():
    """A reason or a page that points at a test file points at one that exists."""
    for block in all_blocks():
        for name in re.findall(r"tests/[\w/]+\.py", block.value):
            assert (ROOT / name).exists(), f"{block.where}: {name}"
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for name in re.findall(r"`(tests/[\w/]+\.py)`", path.read_text(encoding="utf-8")):
            assert (ROOT / name).exists(), f"{path.name}: {name}"
