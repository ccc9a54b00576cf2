import sys

from lucia_fastapi.cli import main

sys.exit(main())
