"""The command-line interface: parses options, calls the library, prints.

Each command lives in its own module and is imported only when it is invoked, so
``judgecal --help`` stays fast.
"""
