import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from .cli import main

sys.exit(main())
