"""Command line for the Makefile's deploy, destroy and package targets, and their parts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from deploytools import deploy, packaging, policy, policyfiles
from deploytools.project import ROOT, DeployError

COMMANDS = {
    "deploy": "create the table if missing, chalice deploy, throttling; print the URLs",
    "destroy": "chalice delete and the log groups; the table only with --delete-table",
    "package": "chalice package with the merge template: a CloudFormation/SAM template",
    "create-table": "only the stage's table (on-demand, TTL on), for a bare chalice deploy",
    "throttle": "only the stage's route throttling, after a bare chalice deploy",
    "policy-files": "write .chalice/policy-STAGE.json from resources.json (--check: compare)",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploytools", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in COMMANDS.items():
        command = commands.add_parser(name, help=help_text)
        if name == "policy-files":
            command.add_argument(
                "--check", action="store_true", help="change nothing; exit 1 if stale"
            )
            continue
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
        elif args.command == "create-table":
            deploy.create_table(args.stage)
        elif args.command == "throttle":
            deploy.throttle(args.stage)
        elif args.command == "policy-files":
            return _policy_files(check=args.check)
        else:
            out = args.out or ROOT / "build" / f"package-{args.stage}"
            print(packaging.describe(packaging.package(args.stage, out)))
    except (DeployError, policy.PolicyError, BotoCoreError, ClientError) as error:
        print(f"{args.command} failed: {error}", file=sys.stderr)
        return 1
    return 0


def _policy_files(*, check: bool) -> int:
    if check:
        stale = policyfiles.stale()
        for path in stale:
            print(f"{path} differs from resources.json: python -m deploytools policy-files")
        return 1 if stale else 0
    for path in policyfiles.write():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
