"""Deployment to AWS: `make deploy`, `make destroy` and `make package` (see docs/deploy.md)."""
