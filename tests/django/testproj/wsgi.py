"""WSGI entry point for gunicorn."""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproj.settings")

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
