"""``python -m packetcapture``: the command line."""

import sys

from packetcapture.cli import main

sys.exit(main())
