"""`make package`: one CloudFormation/SAM stack with the table, the policy and the functions.

A thin wrapper: it runs exactly what a Chalice user types in the project,
`chalice package --stage STAGE --merge-template .chalice/resources.json OUT`,
then checks and lists the deployment package. The merge template adds the
table, the throttling of the websocket stage and `ChatFunctionsPolicy`, and
wires TABLE_NAME to the table. With `autogen_policy: false` Chalice puts the
stage's committed policy file inline in every role; the merge template's
`"Policies": []` on each role replaces that, so the stack holds one grant set:
`ChatFunctionsPolicy`, scoped by CloudFormation references.
"""

from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import boto3

from deploytools.project import ROOT, DeployError, load_stage
from deploytools.runner import ChaliceRunner, run_chalice

# Never in the zip: the Lambda runtime provides boto3, and the rest is for development.
FORBIDDEN_PREFIXES = ("boto3/", "botocore/", "s3transfer/", "moto/", "pytest/", "localgateway/")

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


def package(
    stage_name: str,
    out: Path,
    *,
    project: Path = ROOT,
    chalice: ChaliceRunner = run_chalice,
) -> Package:
    """Run the bare `chalice package` into `out` (emptied first) and check the zip it made."""
    stage = load_stage(stage_name, project)
    env = {"AWS_EC2_METADATA_DISABLED": "true"}
    if not boto3.session.Session().region_name:
        env["AWS_DEFAULT_REGION"] = FALLBACK_REGION
    out = out.resolve()
    if out.exists():
        shutil.rmtree(out)
    merge = stage.merge_template_path.relative_to(stage.project)
    chalice(
        stage.project,
        ["package", "--stage", stage.name, "--merge-template", str(merge), str(out)],
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
