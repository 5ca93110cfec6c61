import os

from django.core.asgi import get_asgi_application

from trusted_identity.asgi import LeanSessions

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
# Session starts answered without Django's ASGI handler (docs/deploying.md, "ASGI").
application = LeanSessions(get_asgi_application())
