"""``python -m kv_client``: the ``kv`` command, for when the script is not on PATH."""

import sys

from ._cli import main

sys.exit(main())
