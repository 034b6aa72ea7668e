"""WSGI entry point for the loopback Keystone served by scripts/keystone.sh.

keystone 30.x ships no ``keystone-wsgi-public`` script any more; the application is
``keystone.wsgi.api:application``, which reads its configuration from the files named
in ``OS_KEYSTONE_CONFIG_FILES`` (or ``OS_KEYSTONE_CONFIG_DIR``). Keystone's oslo.config
also parses ``sys.argv``, which under gunicorn holds gunicorn's own options and makes
the worker exit with a usage error, so the arguments are dropped before the import.
"""

import sys

sys.argv = sys.argv[:1]

from keystone.wsgi.api import application  # noqa: E402,F401
