"""Training recipes shipped with fcnseg, usable by name: ``fcnseg train --config NAME``."""
