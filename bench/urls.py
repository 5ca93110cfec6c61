from django.urls import path

from project.urls import urlpatterns as project_urlpatterns
from trusted_identity.views import start_session

from . import views

urlpatterns = [
    path("bench/trivial", views.trivial),
    path("bench/handwritten", views.handwritten),
    # Session start through Django (the view behind every middleware), on a path the
    # lean wrapper of project/wsgi.py leaves alone: the same server measures both paths.
    path("bench/django/v1/sessions", start_session),
    *project_urlpatterns,
]
