"""``python -m synthdiv`` runs the command line."""

import sys

from synthdiv.cli import main

sys.exit(main())
