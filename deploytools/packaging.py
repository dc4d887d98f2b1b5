"""`make package`: one CloudFormation/SAM stack with the table, the policy and the functions.

`chalice package --merge-template .chalice/resources.json` adds the table and
`ChatFunctionsPolicy` and wires TABLE_NAME to the table. Chalice runs on a
copy of what it packages (the app, chalicelib, requirements and the config),
so packaging never writes into the checkout: with `autogen_policy: false`
Chalice insists on reading the stage's policy file, and in the checkout that
file is the one rendered for `chalice deploy` (or absent). The copy gets an
empty one; the merge template empties every role's inline policies anyway
and grants through `ChatFunctionsPolicy` instead.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import boto3

from deploytools.project import ROOT, DeployError, Stage, load_stage
from deploytools.runner import ChaliceRunner, run_chalice

# What Chalice puts in the deployment package, besides its own runtime.
PACKAGED = ("app.py", "chalicelib", "vendor", "requirements.txt")

# Never in the zip: the Lambda runtime provides boto3, and the rest is for development.
FORBIDDEN_PREFIXES = ("boto3/", "botocore/", "s3transfer/", "moto/", "pytest/", "localgateway/")

EMPTY_POLICY = {"Version": "2012-10-17", "Statement": []}

# `chalice package` makes an AWS client only to learn the region, which names the
# Lambda service principal (lambda.amazonaws.com outside China). CloudFormation fills
# in region and account, so the template does not depend on it: without a configured
# region this one is used, and no credentials are looked up anywhere.
FALLBACK_REGION = "us-east-1"


@dataclass(frozen=True)
class Package:
    template: Path
    deployment_zip: Path
    size: int
    names: tuple[str, ...]


def stage_copy(stage: Stage, destination: Path) -> Path:
    """A project holding only what `chalice package` reads."""
    (destination / ".chalice").mkdir(parents=True)
    for name in PACKAGED:
        source = stage.project / name
        if source.is_dir():
            shutil.copytree(
                source, destination / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        elif source.exists():
            shutil.copy2(source, destination / name)
    shutil.copy2(stage.chalice_dir / "config.json", destination / ".chalice" / "config.json")
    (destination / ".chalice" / stage.iam_policy_file).write_text(
        json.dumps(EMPTY_POLICY), encoding="utf-8"
    )
    return destination


def package(
    stage_name: str,
    out: Path,
    *,
    project: Path = ROOT,
    chalice: ChaliceRunner = run_chalice,
) -> Package:
    stage = load_stage(stage_name, project)
    env = {"AWS_EC2_METADATA_DISABLED": "true"}
    if not boto3.session.Session().region_name:
        env["AWS_DEFAULT_REGION"] = FALLBACK_REGION
    out = out.resolve()
    if out.exists():
        shutil.rmtree(out)
    with tempfile.TemporaryDirectory(prefix="chalice-chat-package-") as scratch:
        copy = stage_copy(stage, Path(scratch) / "project")
        chalice(
            copy,
            [
                "package",
                "--stage",
                stage.name,
                "--merge-template",
                str(stage.merge_template_path),
                str(out),
            ],
            env,
        )
    deployment_zip = out / "deployment.zip"
    with zipfile.ZipFile(deployment_zip) as archive:
        names = tuple(sorted(archive.namelist()))
    unwanted = [name for name in names if name.startswith(FORBIDDEN_PREFIXES)]
    if unwanted:
        raise DeployError(f"the deployment package holds what Lambda must not get: {unwanted}")
    return Package(out / "sam.json", deployment_zip, deployment_zip.stat().st_size, names)


def describe(result: Package) -> str:
    files = "\n".join(f"  {name}" for name in result.names)
    return (
        f"Template:           {result.template}\n"
        f"Deployment package: {result.deployment_zip} "
        f"({result.size:,} bytes, {len(result.names)} files)\n{files}"
    )
