"""``python -m strongbox`` runs the command line."""

import sys

from strongbox.runtime.main import main

sys.exit(main())
