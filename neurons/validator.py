"""Entry point for validators: `python neurons/validator.py [flags]` (same as `subnet validator run`)."""

import sys

if __name__ == "__main__":
    try:
        from subnet.validator.cli import run_from_argv
    except ModuleNotFoundError:
        print("the validator is not yet available in this version", file=sys.stderr)
        sys.exit(2)
    sys.exit(run_from_argv(sys.argv[1:]))
