import sys

from edgecount.cli import main

sys.exit(main())
