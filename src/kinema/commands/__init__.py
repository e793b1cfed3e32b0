"""Subcommands of the `kinema` command line; each module offers `register(subparsers)`."""
