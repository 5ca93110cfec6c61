"""Include with ``path("trusted-identity/", include("trusted_identity.urls"))``."""

from django.urls import path, re_path

from . import views

app_name = views.APP_NAMESPACE

urlpatterns = [
    path("sign/", views.sign_current_user, name="sign"),
    path("v1/sessions", views.start_session, name="start-session"),
    path("v1/sessions/", views.start_session),
    # [\s\S], not ".": a newline too, so "/trusted-identity/%0A" is a JSON 404 as well.
    re_path(r"^[\s\S]*$", views.not_found, name="not-found"),
]
