"""Settings of the example Django project using taskyard as its task backend.

`DJANGO_SITE_DB`: "sqlite" (default) or "postgres" (`DJANGO_SITE_POSTGRES_URL`, default
postgres://postgres@127.0.0.1:5432/test; `manage.py test` makes a test database of its own).
On SQLite the taskyard store is a file of its own (`TASKYARD_URL`, else taskyard-django.db
here); on PostgreSQL it is the Django database itself (schema "taskyard"), so a task
enqueued inside `transaction.atomic()` is stored in that transaction.
"""

import os
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "example-only-not-secret"  # noqa: S105 - an example project, never deployed
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "django_site.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "taskyard.contrib.django",
    "shop",
]
try:  # the backport (Django < 6) is an app of its own
    import django.tasks  # noqa: F401
except ImportError:
    INSTALLED_APPS.insert(1, "django_tasks")

DB = os.environ.get("DJANGO_SITE_DB", "sqlite")
if DB == "postgres":
    url = urlsplit(os.environ.get("DJANGO_SITE_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"))
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(url.path.lstrip("/")),
            "USER": unquote(url.username or ""),
            "PASSWORD": unquote(url.password or ""),
            "HOST": url.hostname or "",
            "PORT": str(url.port or ""),
            # A test database of this run's own: runs side by side never share one.
            "TEST": {"NAME": f"test_django_site_{os.getpid()}"},
        }
    }
elif DB == "sqlite":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("DJANGO_SITE_SQLITE", str(BASE_DIR / "db.sqlite3")),
            # A file, not memory: the worker process the tests start opens it too.
            "TEST": {"NAME": str(Path(tempfile.gettempdir()) / f"test_django_site_{os.getpid()}.sqlite3")},
        }
    }
else:
    raise RuntimeError(f"DJANGO_SITE_DB must be 'sqlite' or 'postgres', not {DB!r}")

OPTIONS: dict[str, object] = {}
if os.environ.get("TASKYARD_URL"):
    OPTIONS["BACKEND_URL"] = os.environ["TASKYARD_URL"]
elif DB == "sqlite":
    # `manage.py test` gets a store of its own run (the tests remove it).
    store = (
        Path(tempfile.gettempdir()) / f"taskyard-django-test-{os.getpid()}.db"
        if sys.argv[1:2] == ["test"]
        else BASE_DIR / "taskyard-django.db"
    )
    OPTIONS["BACKEND_URL"] = f"sqlite:///{store}"
# else: PostgreSQL, the Django database is the taskyard store (OPTIONS["DATABASE"] = "default").

TASKS = {
    "default": {
        "BACKEND": "taskyard.contrib.django.TaskyardBackend",
        "QUEUES": ["default", "mail"],
        "OPTIONS": OPTIONS,
    }
}
