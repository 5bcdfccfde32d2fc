import sys

from nos_cli import main

sys.exit(main())
