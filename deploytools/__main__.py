"""Command line for the Makefile's deploy, destroy and package targets."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from deploytools import deploy, packaging, policy
from deploytools.project import ROOT, DeployError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploytools", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("deploy", "create the table if missing, then chalice deploy; print the URLs"),
        ("destroy", "chalice delete and the log groups; the table only with --delete-table"),
        ("package", "a CloudFormation/SAM template and deployment.zip, without AWS"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--stage", default="dev")
        if name == "destroy":
            command.add_argument(
                "--delete-table", action="store_true", help="also delete the table and its history"
            )
        if name == "package":
            command.add_argument("--out", type=Path, help="default: build/package-STAGE")
    args = parser.parse_args(argv)
    try:
        if args.command == "deploy":
            deploy.deploy(args.stage)
        elif args.command == "destroy":
            deploy.destroy(args.stage, delete_table=args.delete_table)
        else:
            out = args.out or ROOT / "build" / f"package-{args.stage}"
            print(packaging.describe(packaging.package(args.stage, out)))
    except (DeployError, policy.PolicyError, BotoCoreError, ClientError) as error:
        print(f"{args.command} failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
