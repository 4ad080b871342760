"""``python -m fcnseg``."""

import sys

try:  # Ctrl-C while the modules load (seconds, with torch) is one line too, not a traceback
    from fcnseg.cli import main
except KeyboardInterrupt:
    print("fcnseg: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
