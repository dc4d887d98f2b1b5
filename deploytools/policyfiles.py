"""The committed `.chalice/policy-STAGE.json` files, rendered from `ChatFunctionsPolicy`.

They make a bare `chalice deploy` and `chalice package` work in a fresh clone.
Names Chalice gives before anything exists (the table, the functions, the log
groups) are exact; the region, the account and the API id are wildcards,
because they are unknown until the first deploy (also where the bucket's
name holds them: `chalice-chat-STAGE-files-*-*`). `make deploy` narrows those
too for its own deploys. `python -m deploytools policy-files` writes them; a
test fails when a committed file differs from what this module renders, so
they cannot drift from resources.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deploytools import policy
from deploytools.project import (
    ROOT,
    WEBSOCKET_API,
    Stage,
    load_stage,
    merge_template,
    policy_values,
)

# Every ARN here is in the standard partition: regions of aws-cn or aws-us-gov get
# theirs from `make deploy`, which reads the partition from the caller's identity.
PARTITION = "aws"


def stage_names(project: Path = ROOT) -> list[str]:
    config = json.loads((project / ".chalice" / "config.json").read_text(encoding="utf-8"))
    return sorted(config.get("stages", {}))


def committed_policy(stage: Stage) -> dict[str, Any]:
    """The stage's policy with wildcards only for region, account and API id."""
    values = policy_values(
        stage,
        partition=PARTITION,
        region=policy.UNKNOWN,
        account=policy.UNKNOWN,
        api_id=policy.UNKNOWN,
    )
    document = policy.policy_document(merge_template(stage))
    return policy.render(document, values, defer=frozenset({WEBSOCKET_API}))


def policy_text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


def expected_files(project: Path = ROOT) -> dict[Path, str]:
    """Each stage's policy file and the text it must hold."""
    files = {}
    for name in stage_names(project):
        stage = load_stage(name, project)
        files[stage.policy_path] = policy_text(committed_policy(stage))
    return files


def stale(project: Path = ROOT) -> list[Path]:
    """The policy files that are missing or differ from what resources.json gives."""
    return [
        path
        for path, text in expected_files(project).items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]


def write(project: Path = ROOT) -> list[Path]:
    """Write every stage's policy file; return the ones that changed."""
    changed = stale(project)
    for path, text in expected_files(project).items():
        if path in changed:
            path.write_text(text, encoding="utf-8")
    return changed
