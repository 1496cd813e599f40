"""Entry point for miners: `python neurons/miner.py train|benchmark|upload ...` (same as `subnet miner ...`)."""

import sys

if __name__ == "__main__":
    try:
        from subnet.miner.cli import main
    except ModuleNotFoundError:
        print("the miner is not yet available in this version", file=sys.stderr)
        sys.exit(2)
    main()
