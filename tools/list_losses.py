#!/usr/bin/env python
"""List every registered loss with its constructor arguments and summary.

Plugins (entry-point group ``yolo_losses.plugins``) are loaded first, so their
losses are listed too. The rule for what counts as a loss is in
``yolo_losses/catalog.py``.

    python tools/list_losses.py                    # plain table
    python tools/list_losses.py --json             # machine-readable
    python tools/list_losses.py --markdown         # README table
    python tools/list_losses.py --import my_project.losses
"""
import argparse
import importlib
import sys
from typing import List, Optional

from yolo_losses.catalog import (describe_registered_losses, format_markdown,
                                 format_table, losses_as_json)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='List the losses of the yolo_losses registry.')
    output = parser.add_mutually_exclusive_group()
    output.add_argument('--json', action='store_true',
                        help='print JSON instead of a table')
    output.add_argument('--markdown', action='store_true',
                        help='print a Markdown table')
    parser.add_argument('--import', dest='imports', action='append',
                        default=[], metavar='MODULE',
                        help='import MODULE first (like custom_imports); '
                        'repeatable')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    for module in args.imports:
        importlib.import_module(module)
    losses = describe_registered_losses()
    if args.json:
        print(losses_as_json(losses))
    elif args.markdown:
        print(format_markdown(losses))
    else:
        print(format_table(losses))
    return 0


if __name__ == '__main__':
    sys.exit(main())
