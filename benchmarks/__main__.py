"""`python -m benchmarks [--smoke --out DIR] [--profile]`: see benchmarks/run.py."""

import sys

from benchmarks.run import main

sys.exit(main())
