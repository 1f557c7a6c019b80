"""`python -m plasticity.cli`: the `plasticity` command."""

import sys

from plasticity.cli.commands import main

sys.exit(main())
