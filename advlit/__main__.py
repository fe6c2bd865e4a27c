"""``python -m advlit`` runs the command line."""

from advlit.cli import main

if __name__ == "__main__":
    main()
