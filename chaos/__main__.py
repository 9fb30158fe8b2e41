"""`python -m chaos`: run the chaos matrix and print the results table."""

from chaos.runner import main

if __name__ == "__main__":
    raise SystemExit(main())
