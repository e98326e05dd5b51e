import sys

from lormail.cli import main

sys.exit(main())
