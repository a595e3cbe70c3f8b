import sys

from finecliper.cli import main

sys.exit(main())
