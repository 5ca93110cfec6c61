"""The example project's URLs plus a page that uses the template tag and the static
client, for ``tests/test_browser_client.py`` (set as ROOT_URLCONF there).
"""

from django.http import HttpRequest, HttpResponse
from django.template import RequestContext, Template
from django.urls import path

from project.urls import urlpatterns as project_urlpatterns

#: Exposes the client on ``window.ti`` and ``window.run(options)``, which resolves to
#: ``{ok, session}`` or ``{ok: false, code, status, ...}`` (errors as plain data).
HARNESS = """
  window.ti = ti;
  window.run = async (options) => {
    try {
      return { ok: true, session: await ti.startSession(options) };
    } catch (e) {
      return {
        ok: false, name: e.name, isTyped: e instanceof ti.TrustedIdentityError,
        code: e.code, status: e.status, message: e.message, retryAfter: e.retryAfter,
        cause: e.cause ? (e.cause.code || e.cause.name) : null,
      };
    }
  };
  window.ready = true;
"""

PAGE_SOURCE = (
    "{% load static trusted_identity %}<!doctype html><html><head><meta charset='utf-8'>"
    "<title>client</title>{% trusted_identity_config 'web' TAG_ARGUMENTS %}</head><body>"
    "<script type='module'>import * as ti from \"{% static 'trusted_identity/client.js' %}\";"
    "{{ harness|safe }}</script></body></html>"
)
PAGE = Template(PAGE_SOURCE.replace(" TAG_ARGUMENTS", ""))
#: The same page signed with the expiring form: {% trusted_identity_config 'web' form='token' %}.
TOKEN_PAGE = Template(PAGE_SOURCE.replace("TAG_ARGUMENTS", "form='token'"))


def client_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse(PAGE.render(RequestContext(request, {"harness": HARNESS})))


def token_client_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse(TOKEN_PAGE.render(RequestContext(request, {"harness": HARNESS})))


urlpatterns = [
    path("client-page/", client_page),
    path("client-page-token/", token_client_page),
    *project_urlpatterns,
]
