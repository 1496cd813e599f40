"""Entry point for miners: `python neurons/miner.py train|benchmark|upload ...` (same as `subnet miner ...`)."""

import sys

if __name__ == "__main__":
    try:
        from subnet.commands.miner_commands import main
    except ModuleNotFoundError as e:  # name what is missing: usually not the project's interpreter
        sys.exit(f"error: module {e.name!r} is not installed for {sys.executable}; "
                 f"run `make install`, then `.venv/bin/python neurons/miner.py`")
    main()
