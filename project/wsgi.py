import os

from django.core.wsgi import get_wsgi_application

from trusted_identity.wsgi import LeanSessions

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
# Session starts answered without Django's middleware chain (docs/production.md: "The lean path").
application = LeanSessions(get_wsgi_application())
