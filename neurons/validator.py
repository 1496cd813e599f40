"""Entry point for validators: `python neurons/validator.py [flags]` (same as `subnet validator run`)."""

import sys

if __name__ == "__main__":
    try:
        from subnet.commands.validator_commands import run_from_argv
    except ModuleNotFoundError as e:  # name what is missing: usually not the project's interpreter
        sys.exit(f"error: module {e.name!r} is not installed for {sys.executable}; "
                 f"run `make install`, then `.venv/bin/python neurons/validator.py`")
    sys.exit(run_from_argv(sys.argv[1:]))
