from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("trusted-identity/", include("trusted_identity.urls")),
]

# Under /trusted-identity/ even the errors Django raises before any view runs (a
# Host header not allowed, a failing middleware) answer the contract's JSON body;
# elsewhere these defer to Django's default pages.
handler400 = "trusted_identity.views.handler400"
handler403 = "trusted_identity.views.handler403"
handler404 = "trusted_identity.views.handler404"
handler500 = "trusted_identity.views.handler500"
