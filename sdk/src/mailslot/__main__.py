"""``python -m mailslot`` runs the ``mailslot`` command line."""

from mailslot.cli import main

if __name__ == "__main__":
    main()
