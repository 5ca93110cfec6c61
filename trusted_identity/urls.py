"""Include with ``path("trusted-identity/", include("trusted_identity.urls"))``."""

from django.urls import path, re_path

from . import views

app_name = "trusted_identity"

urlpatterns = [
    path("sign/", views.sign_current_user, name="sign"),
    path("v1/sessions", views.start_session, name="start-session"),
    path("v1/sessions/", views.start_session),
    re_path(r"^.*$", views.not_found, name="not-found"),
]
