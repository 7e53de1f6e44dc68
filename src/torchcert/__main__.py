"""``python -m torchcert`` (and ``torchrun -m torchcert``): the command-line tool."""
from torchcert.cli import main

if __name__ == "__main__":
    main()
