from django.urls import path

from project.urls import urlpatterns as project_urlpatterns

from . import views

urlpatterns = [
    path("bench/trivial", views.trivial),
    path("bench/handwritten", views.handwritten),
    *project_urlpatterns,
]
