"""`python -m subnet` runs the `subnet` command (the same as the installed script)."""

from subnet.commands.main import main

if __name__ == "__main__":
    main()
