"""``python -m jobtrack_airtable.cli``: the same as the ``jobtrack-airtable`` script."""

import sys

from . import main

sys.exit(main())
