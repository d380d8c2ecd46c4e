"""`python -m billing_client ...` (see billing_client.cli)."""

import sys

from billing_client.cli import main

if __name__ == "__main__":
    sys.exit(main())
