#!/usr/bin/env python
"""The example Django project's command line (`python manage.py test`, `... taskyard_worker`)."""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    # The repository root, so that `examples` and (in a checkout) `taskyard` import.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
