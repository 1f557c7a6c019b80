"""`python -m plasticity.cli`: the `plasticity` command."""

import sys

from plasticity.cli import main

sys.exit(main())
