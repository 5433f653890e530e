"""``python -m synthdiv`` runs the command line."""

import sys

from synthdiv.cli.app import main

sys.exit(main())
